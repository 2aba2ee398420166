"""The MPI job: plan on rank 0 → broadcast → accumulate → merge → write.

Every step that can fail runs through :class:`~mpicube.parallel.Parallel`, so a
failure on any rank ends every rank with the same one-line reason, and rank 0
deletes the cubes it had started: nothing half-written is left.
"""

from __future__ import annotations

import logging
import resource
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from mpicube import accumulate, postproc, tiffs
from mpicube.bin_writer import BinSlots, BinWriter
from mpicube.detector_setup import prepare_detector
from mpicube.detectors import Calibrator, DetectorConstants, Geometry
from mpicube.errors import CubeError
from mpicube.parallel import Parallel
from mpicube.plan import Plan, make_plan
from mpicube.report.progress import Progress
from mpicube.report.runlog import PhaseTimer, plan_lines
from mpicube.smalldata import CONSTANT_NAMES, SmallData
from mpicube.sources import FramesOption, FrameSource, open_frame_source
from mpicube.writer import (
    CubeFile,
    CubeSet,
    DetectorOutput,
    check_free_space,
    existing_cubes,
)

log = logging.getLogger("mpicube")


@dataclass(frozen=True)
class JobOptions:
    """What one cube job is asked to do."""

    experiment: str
    run: int
    input_path: Path
    outdir: Path
    config_path: Path
    force: bool = False
    memory_budget: int = 2 * 2**30  # bytes of detector accumulators per rank
    summary_dir: Path | None = None  # where rank 0 writes the logbook summary; None: none
    frames: FramesOption = FramesOption()  # where detector frames come from


@dataclass(frozen=True)
class Detector:
    """A detector as one rank uses it: its calibrator and, for writing, its output layout."""

    calibrator: Calibrator
    geometry: Geometry | None  # set when the cube holds assembled images
    output: DetectorOutput | None  # set on rank 0 only
    procs: tuple[postproc.PostProc, ...] = ()  # det_proc functions applied to each bin


def run_job(options: JobOptions, par: Parallel) -> list[Path]:
    """Run the cube job of one run on every rank; return the cube files written (rank 0)."""
    started = time.perf_counter()
    timer = PhaseTimer(("plan", "scalars", "detectors", "merge", "write"))
    with timer.phase("plan"):
        plan = par.from_root(lambda: _checked_plan(options))
    if par.is_root:
        _log_plan(plan, options)
    if not plan.cubes:
        raise CubeError("no cube written: every selection keeps no event")
    sd = par.everywhere(lambda: SmallData(options.input_path))
    cubes: CubeSet | None = None
    try:
        events = accumulate.events_in_cubes(plan)
        start, stop = par.share(len(events))
        local = accumulate.local_events(plan, events[start:stop])
        detectors = par.everywhere(lambda: _detectors(sd, plan, par.is_root))
        sources = par.everywhere(lambda: _frame_sources(sd, plan, options.frames))
        cubes = par.on_root(timer.timed("write", lambda: _open_cubes(plan, options, detectors)))
        files = cubes.files if cubes else []
        with timer.phase("scalars"):
            _merge_scalars(par, sd, plan, local, files, timer)
        progress = Progress(
            par.size,
            sys.stdout if par.is_root else None,
            on_first=lambda: log.info(
                "first frames calibrated %.2f s after the job started",
                time.perf_counter() - started,
            ),
        )
        with timer.phase("detectors"):
            _merge_detectors(
                par, plan, local, detectors, sources, files, options.memory_budget, timer, progress
            )
        written = par.on_root(timer.timed("write", lambda: cubes.commit())) or []
        if plan.settings.save_tiff:
            names = [d.source for d in plan.settings.detectors]
            par.on_root(
                timer.timed("write", lambda: [tiffs.write_tiffs(p, names) for p in written])
            )
    except BaseException:
        if cubes:
            cubes.discard()
        raise
    finally:
        sd.close()
    peak_rss = par.gather(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    if par.is_root:
        for path in written:
            log.info("wrote %s", path)
        if options.summary_dir is not None:
            from mpicube.report.summary import write_summary_logged  # matplotlib: rank 0 only

            with timer.phase("summary"):
                write_summary_logged(plan, options.summary_dir)
        log.info(timer.line())
        log.info(
            "done in %.1f s on %d ranks; peak memory per rank %s GB",
            time.perf_counter() - started,
            par.size,
            " ".join(f"{gb:.2f}" for gb in peak_rss),
        )
    return written


def _checked_plan(options: JobOptions) -> Plan:
    plan = make_plan(options.config_path, options.experiment, options.run, options.input_path)
    if not options.force:
        existing = existing_cubes(options.outdir, [c.file_name for c in plan.cubes])
        if existing:
            raise CubeError(f"{existing[0]} exists already (use --force to replace it)")
    return plan


def _log_plan(plan: Plan, options: JobOptions) -> None:
    for line in plan_lines(plan):
        log.info(line)
    log.info("output directory: %s", options.outdir)


def _detectors(sd: SmallData, plan: Plan, for_writing: bool) -> list[Detector]:
    """Return the run's detectors: calibrators everywhere, output layouts when writing."""
    detectors = []
    for request in plan.settings.detectors:
        ready = prepare_detector(sd, request, str(plan.config_path))
        output = (
            _output_layout(ready.constants, ready.geometry, ready.procs) if for_writing else None
        )
        detectors.append(Detector(ready.calibrator, ready.geometry, output, ready.procs))
    return detectors


def _frame_sources(sd: SmallData, plan: Plan, option: FramesOption) -> list[FrameSource]:
    """Return this rank's frame source of every detector of the run."""
    return [
        open_frame_source(option, sd, request.source, plan.experiment, plan.run)
        for request in plan.settings.detectors
    ]


def _output_layout(
    constants: DetectorConstants, geometry: Geometry | None, procs: tuple[postproc.PostProc, ...]
) -> DetectorOutput:
    """Return the detector's data shape, constants (image-shaped when assembling images) and
    det_proc result layouts."""
    derived = {p.key: (p.shape, p.attrs) for p in procs}
    available = {
        key: getattr(constants, key)
        for key in CONSTANT_NAMES
        if getattr(constants, key) is not None
    }
    if geometry is None:
        return DetectorOutput(constants.name, constants.raw_shape, available, derived)
    images = {k: _as_image(geometry, k, v) for k, v in available.items()}
    return DetectorOutput(constants.name, geometry.image_shape, images, derived)


def _as_image(geometry: Geometry, key: str, value: np.ndarray) -> np.ndarray:
    """Return a constant in image shape (per gain stage if it has one); ix and iy stay raw."""
    if key in ("ix", "iy"):
        return value
    if value.ndim > len(geometry.raw_shape):
        return geometry.assemble(value)
    return geometry.assemble_one(value)


def _open_cubes(plan: Plan, options: JobOptions, detectors: list[Detector]) -> CubeSet:
    """Return the run's cubes, opened under temporary names once the disk has room."""
    check_free_space(options.outdir, _bytes_needed(plan, detectors))
    return CubeSet([options.outdir / cube.file_name for cube in plan.cubes], options.force)


def _bytes_needed(plan: Plan, detectors: list[Detector]) -> int:
    """Return an upper estimate of the bytes the run's cubes take on disk."""
    scalars = plan.n_rows * 8 * (4 + len(plan.settings.fields)) + len(plan.cubes) * 2**20
    total = scalars
    for i, det in enumerate(detectors):
        assert det.output is not None  # rank 0 only
        rows_with_frames = int(np.count_nonzero(plan.detector_entries(i)))
        constants = sum(v.nbytes for v in det.output.constants.values())
        total += rows_with_frames * 8 * int(np.prod(det.output.shape)) + len(plan.cubes) * constants
    return total


def _merge_scalars(
    par: Parallel,
    sd: SmallData,
    plan: Plan,
    local: accumulate.LocalEvents,
    files: list[CubeFile],
    timer: PhaseTimer,
) -> None:
    sums = par.everywhere(
        lambda: accumulate.scalar_sums(sd, plan.settings.fields, local, plan.n_rows)
    )
    with timer.phase("merge"):
        for array in sums.values():
            par.reduce_sum(array)

    def write() -> None:
        n_bins = plan.bins.n_bins
        for c, (cube, file) in enumerate(zip(plan.cubes, files, strict=True)):
            rows = slice(c * n_bins, (c + 1) * n_bins)
            file.write_bins(plan, cube, {k: v[rows] for k, v in sums.items()}, par.size)

    par.on_root(timer.timed("write", write))


def _merge_detectors(
    par: Parallel,
    plan: Plan,
    local: accumulate.LocalEvents,
    detectors: list[Detector],
    sources: list[FrameSource],
    files: list[CubeFile],
    budget: int,
    timer: PhaseTimer,
    progress: Progress,
) -> None:
    """Sum every detector's frames per (cube, bin) row, block by block of rows within budget.

    ``<det>_nEntries`` ends as the frames actually summed: fewer than planned when a
    frame source lacks frames of selected events.
    """
    if not detectors:
        return
    n_bins = plan.bins.n_bins
    entries = [plan.detector_entries(i) for i in range(len(detectors))]
    slots = par.from_root(
        timer.timed("write", lambda: _add_detectors(files, detectors, entries, n_bins))
    )
    rows_with_frame = [
        np.where(plan.frames_present[i][local.events][:, None], local.rows, -1)
        for i in range(len(detectors))
    ]
    summed = [np.zeros(plan.n_rows, dtype=np.int64) for _ in detectors]
    active = np.flatnonzero(np.sum(entries, axis=0) > 0)
    bytes_per_row = 8 * sum(d.calibrator.n_pixels for d in detectors)
    blocks = accumulate.row_blocks(active, bytes_per_row, budget)
    if par.is_root:
        log.info(
            "detector sums: %d (cube, bin) rows hold frames, %.2f GB in all, "
            "accumulated in %d block(s) within %.2f GB per rank",
            len(active),
            len(active) * bytes_per_row / 2**30,
            len(blocks),
            budget / 2**30,
        )
    for block in blocks:
        sums = par.everywhere(
            partial(_add_frames, block, detectors, sources, local, rows_with_frame, plan, progress)
        )
        with timer.phase("merge"):
            holders = [par.merge_rows(acc, counts > 0) for acc, counts in sums]
            for _, counts in sums:
                par.reduce_sum(counts)
        with timer.phase("write"):
            accs = [acc for acc, _ in sums]
            derived = par.everywhere(
                partial(_write_held_bins, par.rank, block, accs, holders, detectors, slots, n_bins)
            )
            everyone = par.gather(derived)
            par.on_root(partial(_write_derived, files, everyone))
        for i, (_, counts) in enumerate(sums):
            summed[i][block] = counts  # the total on rank 0
        del sums, accs  # free this block's accumulators before the next block allocates
    par.on_root(lambda: _write_frame_counts(detectors, entries, summed, files, n_bins))


def _add_frames(
    block: np.ndarray,
    detectors: list[Detector],
    sources: list[FrameSource],
    local: accumulate.LocalEvents,
    rows_with_frame: list[np.ndarray],
    plan: Plan,
    progress: Progress,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Return ``(sums, frames per row)`` of each detector over this rank's events, for the
    (cube, bin) rows of ``block``."""
    sums = []
    for i, det in enumerate(detectors):
        acc = np.zeros((len(block), det.calibrator.n_pixels))
        rows = accumulate.block_rows(rows_with_frame[i], block, plan.n_rows)
        counts = sources[i].accumulate(det.calibrator, local.events, rows, acc, progress)
        sums.append((acc, counts))
    return sums


def _add_detectors(
    files: list[CubeFile], detectors: list[Detector], entries: list[np.ndarray], n_bins: int
) -> BinSlots:
    """Add every detector to every cube (rank 0); return where their bins are written."""
    offsets, shapes = {}, {}
    for i, det in enumerate(detectors):
        assert det.output is not None  # rank 0 only
        for c, file in enumerate(files):
            file.add_detector(det.output, entries[i][c * n_bins : (c + 1) * n_bins])
        offsets[det.output.name] = np.stack([file.bin_offsets(det.output.name) for file in files])
        shapes[det.output.name] = det.output.shape
    return BinSlots(tuple(file.temp for file in files), offsets, shapes)


def _write_held_bins(
    rank: int,
    block: np.ndarray,
    sums: list[np.ndarray],
    holders: list[np.ndarray],
    detectors: list[Detector],
    slots: BinSlots,
    n_bins: int,
) -> list[tuple[int, str, str, int, np.ndarray]]:
    """Write the bins of ``block`` whose total this rank holds; return their det_proc
    results as ``(cube, detector, key, bin, value)`` for rank 0 to write."""
    derived = []
    with BinWriter(slots) as writer:
        for i, det in enumerate(detectors):
            name = det.calibrator.name
            for k in np.flatnonzero(holders[i] == rank):
                c, b = divmod(int(block[k]), n_bins)
                raw = data = sums[i][k].reshape(det.calibrator.raw_shape)
                if det.geometry is not None:
                    data = det.geometry.assemble_one(raw)
                writer.write(name, c, b, data)
                derived.extend((c, name, p.key, b, p.apply(raw, data)) for p in det.procs)
    return derived


def _write_derived(
    files: list[CubeFile], everyone: list[list[tuple[int, str, str, int, np.ndarray]]]
) -> None:
    """Write the det_proc results every rank computed for the bins it held (rank 0)."""
    for c, name, key, b, value in (d for rank in everyone for d in rank):
        files[c].write_derived(name, key, b, value)


def _write_frame_counts(
    detectors: list[Detector],
    planned: list[np.ndarray],
    summed: list[np.ndarray],
    files: list[CubeFile],
    n_bins: int,
) -> None:
    """Write ``<det>_nEntries`` as the frames summed; log the selected frames not found."""
    for i, det in enumerate(detectors):
        missing = int(planned[i].sum() - summed[i].sum())
        if missing:
            log.warning(
                "%s: %d selected events had no frame in the frame source (counted in "
                "nEntries, not in %s_nEntries)",
                det.calibrator.name,
                missing,
                det.calibrator.name,
            )
        for c, file in enumerate(files):
            file.set_detector_entries(det.calibrator.name, summed[i][c * n_bins : (c + 1) * n_bins])
