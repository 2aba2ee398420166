"""``mpicube check``: plan a run as the job would, read no detector frame, say what the job
would do: events kept per row and cube, the bins, the files, and the memory and time needed.

The estimate's model (rough, about ±2x on a local disk; slower on a busy shared file system):

- time per rank = start-up + frames read by that rank x pixels / PIXEL_RATE
  + merging each block of bins over the ranks + rank 0 writing the detector sums;
  PIXEL_RATE is the measured end-to-end rate of read + calibrate + accumulate on one core
  (1.4-1.7k Jungfrau 1M frames/s = ~1.5e9 pixels/s). An event is read once per block of
  bins (memory budget) it falls in.
- memory per rank = the process itself (Python, numpy, h5py, numba: measured 0.2 GB)
  + the broadcast plan + the scalar sums and the share of each field it reads
  + the largest block of detector accumulators (float64 per pixel and bin)
  + one read buffer per detector + the folded calibration coefficients; rank 0 also
  holds the constants it writes into each cube.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mpicube import accumulate
from mpicube.detector_setup import prepare_detector
from mpicube.job import JobOptions
from mpicube.plan import Plan, make_plan
from mpicube.report import histograms
from mpicube.report.runlog import plan_lines
from mpicube.report.summary import summary_path
from mpicube.smalldata import CONSTANT_NAMES, SmallData
from mpicube.writer import existing_cubes

PIXEL_RATE = 1.5e9  # pixels per second per rank: read + calibrate + accumulate
MERGE_RATE = 1.0e9  # bytes per second per Reduce step
WRITE_RATE = 0.5e9  # bytes per second written by rank 0
START_SECONDS = 5.0  # MPI start, imports, numba kernel load
PROCESS_BYTES = int(0.2 * 2**30)
GB = 2**30


@dataclass(frozen=True)
class DetectorInfo:
    """What the estimate needs of one detector: pixels, frame size, constants size."""

    name: str
    detector_type: str
    raw_shape: tuple[int, ...]
    frame_bytes: int
    n_stages: int
    constant_bytes: int
    image_shape: tuple[int, ...] | None

    @property
    def n_pixels(self) -> int:
        """Return the pixels of one raw frame."""
        return math.prod(self.raw_shape)


@dataclass(frozen=True)
class Estimate:
    """Memory per rank (bytes, by part) and wall time (seconds, by part) of a real job."""

    n_ranks: int
    frames_per_rank: int
    n_blocks: int
    memory: dict[str, int]
    seconds: dict[str, float]


def check_run(options: JobOptions, n_ranks: int) -> tuple[list[str], bool]:
    """Return the check report's lines and True if a real job with ``options`` would succeed.

    Raises CubeError for anything that stops the job before it starts (config, fields,
    bins, detectors), with the same message the job would give.
    """
    outdir, force = options.outdir, options.force
    plan = make_plan(options.config_path, options.experiment, options.run, options.input_path)
    with SmallData(plan.input_path) as sd:
        detectors = [detector_info(sd, plan, d) for d in range(len(plan.settings.detectors))]
        missing = histograms.hist_fields(plan.settings, sd)[1]
        columns = {f: math.prod(sd.dataset(f).shape[1:]) for f in plan.settings.fields}
    lines = ["mpicube check: nothing is written, no detector frame is read", *plan_lines(plan)]
    for det in detectors:
        shape = f", image {det.image_shape}" if det.image_shape else ""
        lines.append(
            f"detector {det.name}: {det.detector_type}, raw shape {det.raw_shape}, "
            f"{det.n_pixels:,} pixels{shape}"
        )
    if missing:
        lines.append(
            "hist_list fields not in the smalldata file (noted on the summary page): "
            + ", ".join(missing)
        )
    existing = set(existing_cubes(outdir, [c.file_name for c in plan.cubes]))
    lines.append(f"files that would be written to {outdir}:")
    for cube in plan.cubes:
        path = outdir / cube.file_name
        state = "new" if path not in existing else (
            "exists, would be replaced (--force)" if force else "EXISTS: the job would fail"
        )  # fmt: skip
        lines.append(f"  {cube.file_name} ({state})")
    if options.summary_dir is not None:
        lines.append(f"  {summary_path(options.summary_dir, plan.experiment, plan.run)}")
    est = estimate(plan, detectors, columns, n_ranks, options.memory_budget)
    lines.extend(estimate_lines(est))
    problems = []
    if not plan.cubes:
        problems.append("every selection keeps no event: no cube would be written")
    if existing and not force:
        problems.append(f"{len(existing)} cube(s) exist already: use --force to replace them")
    if problems:
        lines.append("check: the job would FAIL: " + "; ".join(problems))
    else:
        lines.append(f"check: OK, the job would write {len(plan.cubes)} cube(s)")
    return lines, not problems


def detector_info(sd: SmallData, plan: Plan, index: int) -> DetectorInfo:
    """Return the estimate's view of detector number ``index``, validating it as the job
    would (constants, calibration settings, image geometry) without reading a frame."""
    request = plan.settings.detectors[index]
    ready = prepare_detector(sd, request, str(plan.config_path))
    constants = ready.constants
    image_shape = ready.geometry.image_shape if ready.geometry else None
    raw = sd.raw_frames(request.source)
    arrays = [getattr(constants, k) for k in CONSTANT_NAMES if getattr(constants, k) is not None]
    return DetectorInfo(
        name=request.source,
        detector_type=constants.detector_type,
        raw_shape=tuple(constants.raw_shape),
        frame_bytes=math.prod(constants.raw_shape) * raw.dtype.itemsize,
        n_stages=len(constants.ped) if constants.ped.ndim > len(constants.raw_shape) else 1,
        constant_bytes=sum(a.nbytes for a in arrays),
        image_shape=image_shape,
    )


def estimate(
    plan: Plan,
    detectors: list[DetectorInfo],
    columns: dict[str, int],
    n_ranks: int,
    budget: int,
) -> Estimate:
    """Return the memory per rank and the time of a job on ``n_ranks`` ranks (model above)."""
    n_rows = plan.n_rows
    events = accumulate.events_in_cubes(plan)
    share = math.ceil(len(events) / n_ranks)
    everything = accumulate.local_events(plan, events)
    entries = [plan.detector_entries(i) for i in range(len(detectors))]
    active = np.flatnonzero(np.sum(entries, axis=0) > 0) if detectors else np.array([], int)
    bytes_per_row = 8 * sum(d.n_pixels for d in detectors)
    blocks = accumulate.row_blocks(active, bytes_per_row, budget) if detectors else []
    reads = 0.0  # pixel reads by all ranks
    for i, det in enumerate(detectors):
        with_frame = np.where(
            plan.frames_present[i][everything.events][:, None], everything.rows, -1
        )
        for block in blocks:
            rows = accumulate.block_rows(with_frame, block, n_rows)
            reads += float(np.any(rows >= 0, axis=1).sum()) * det.n_pixels
    n_frames = sum(int(plan.frames_present[i][events].sum()) for i in range(len(detectors)))
    largest = max((len(b) for b in blocks), default=0)
    steps = math.ceil(math.log2(n_ranks)) if n_ranks > 1 else 0
    memory = {
        "process": PROCESS_BYTES,
        "plan": plan.bin_index.nbytes + plan.frames_present.nbytes,
        "scalars": sum(8 * c * (n_rows + share) for c in columns.values()),
        "accumulators": largest * bytes_per_row,
        "read buffers": sum(
            max(1, accumulate.READ_BLOCK_BYTES // d.frame_bytes) * d.frame_bytes for d in detectors
        ),
        "calibration": sum(2 * 8 * d.n_stages * d.n_pixels for d in detectors),
        "constants (rank 0)": sum(d.constant_bytes for d in detectors),
    }
    seconds = {
        "start-up": START_SECONDS,
        "calibration": reads / n_ranks / PIXEL_RATE,
        "merge": steps * len(active) * bytes_per_row / MERGE_RATE,
        "write": len(active) * bytes_per_row / WRITE_RATE,
    }
    return Estimate(n_ranks, math.ceil(n_frames / n_ranks), len(blocks), memory, seconds)


def estimate_lines(est: Estimate) -> list[str]:
    """Return the estimate as report lines."""
    memory = sum(est.memory.values())
    seconds = sum(est.seconds.values())
    parts_gb = ", ".join(f"{k} {v / GB:.3f}" for k, v in est.memory.items())
    parts_s = ", ".join(f"{k} {v:.1f}" for k, v in est.seconds.items())
    return [
        f"estimate for {est.n_ranks} ranks (--ranks): ~{est.frames_per_rank:,} detector frames "
        f"per rank, bins accumulated in {est.n_blocks} block(s)",
        f"  memory per rank: ~{memory / GB:.2f} GB ({parts_gb} GB)",
        f"  time: ~{seconds:.0f} s ({parts_s} s; model: {PIXEL_RATE:.1e} pixels/s per rank "
        f"read + calibrate + accumulate, merge {MERGE_RATE / 1e9:.1f} GB/s, write "
        f"{WRITE_RATE / 1e9:.1f} GB/s)",
    ]
