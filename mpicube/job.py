"""The MPI job: plan on rank 0 → broadcast → accumulate → merge → write.

Every step that can fail runs through :class:`~mpicube.parallel.Parallel`, so a
failure on any rank ends every rank with the same one-line reason, and rank 0
deletes the cubes it had started: nothing half-written is left.
"""

from __future__ import annotations

import logging
import resource
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mpicube import accumulate, selection
from mpicube.detectors import Calibrator, DetectorConstants, Geometry, make_calibrator
from mpicube.errors import CubeError
from mpicube.parallel import Parallel
from mpicube.plan import Plan, make_plan
from mpicube.smalldata import CONSTANT_NAMES, SmallData
from mpicube.sources import FramesOption, FrameSource, open_frame_source
from mpicube.writer import CubeFile, DetectorOutput, existing_cubes

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
    frames: FramesOption = FramesOption()  # where detector frames come from


@dataclass(frozen=True)
class Detector:
    """A detector as one rank uses it: its calibrator and, for writing, its output layout."""

    calibrator: Calibrator
    geometry: Geometry | None  # set when the cube holds assembled images
    output: DetectorOutput | None  # set on rank 0 only


def run_job(options: JobOptions, par: Parallel) -> list[Path]:
    """Run the cube job of one run on every rank; return the cube files written (rank 0)."""
    started = time.perf_counter()
    plan = par.from_root(lambda: _checked_plan(options))
    if par.is_root:
        _log_plan(plan, options)
    if not plan.cubes:
        raise CubeError("no cube written: every selection keeps no event")
    sd = par.everywhere(lambda: SmallData(options.input_path))
    files: list[CubeFile] = []
    try:
        events = accumulate.events_in_cubes(plan)
        start, stop = par.share(len(events))
        local = accumulate.local_events(plan, events[start:stop])
        detectors = par.everywhere(lambda: _detectors(sd, plan, par.is_root))
        sources = par.everywhere(lambda: _frame_sources(sd, plan, options.frames))
        files = par.on_root(lambda: _open_cubes(plan, options)) or []
        _merge_scalars(par, sd, plan, local, files)
        _merge_detectors(par, plan, local, detectors, sources, files, options.memory_budget)
        written = par.on_root(lambda: [f.commit() for f in files]) or []
    except BaseException:
        for file in files:
            file.discard()
        raise
    finally:
        sd.close()
    peak_rss = par.gather(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    if par.is_root:
        for path in written:
            log.info("wrote %s", path)
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
    bins = plan.bins
    log.info(
        "run %d of %s: %d events in %s; config %s",
        plan.run,
        plan.experiment,
        plan.n_events,
        plan.input_path,
        plan.config_path,
    )
    log.info(
        "bins: %s on %s (%s), %d bins from %g to %g",
        bins.mode,
        bins.field,
        " + ".join(bins.sources),
        bins.n_bins,
        bins.edges[0],
        bins.edges[-1],
    )
    for cube in plan.empty_cubes:
        log.info("%s:", cube.file_name)
        log.info(selection.NO_EVENT_LINE)
        for line in selection.filter_log_lines(cube.row_counts, plan.n_events):
            log.info(line)
    for cube in plan.cubes:
        counts = cube.bin_counts
        log.info(
            "%s: %d events selected, %d binned, %d below the bins, %d above, %d NaN",
            cube.file_name,
            cube.n_selected,
            counts.binned,
            counts.below,
            counts.above,
            counts.nan,
        )
    if plan.settings.save_tiff:
        log.warning("save_tiff = True is not implemented yet: no TIFF files are written")
    log.info("output directory: %s", options.outdir)


def _detectors(sd: SmallData, plan: Plan, for_writing: bool) -> list[Detector]:
    """Return the run's detectors: calibrators everywhere, output layouts when writing."""
    detectors = []
    for request in plan.settings.detectors:
        constants = sd.detector_constants(request.source)
        calibrator = make_calibrator(constants, request.thres_adu, request.common_mode)
        geometry = None
        if request.image:
            if constants.ix is None or constants.iy is None:
                raise CubeError(
                    f"{sd.path}: detector {request.source!r}: image needs UserDataCfg/"
                    f"{request.source}/ix and iy"
                )
            geometry = Geometry(request.source, constants.ix, constants.iy, constants.raw_shape)
        output = _output_layout(constants, geometry) if for_writing else None
        detectors.append(Detector(calibrator, geometry, output))
    return detectors


def _frame_sources(sd: SmallData, plan: Plan, option: FramesOption) -> list[FrameSource]:
    """Return this rank's frame source of every detector of the run."""
    return [
        open_frame_source(option, sd, request.source, plan.experiment, plan.run)
        for request in plan.settings.detectors
    ]


def _output_layout(constants: DetectorConstants, geometry: Geometry | None) -> DetectorOutput:
    """Return the detector's data shape and constants, image-shaped when assembling images."""
    available = {
        key: getattr(constants, key)
        for key in CONSTANT_NAMES
        if getattr(constants, key) is not None
    }
    if geometry is None:
        return DetectorOutput(constants.name, constants.raw_shape, available)
    images = {k: _as_image(geometry, k, v) for k, v in available.items()}
    return DetectorOutput(constants.name, geometry.image_shape, images)


def _as_image(geometry: Geometry, key: str, value: np.ndarray) -> np.ndarray:
    """Return a constant in image shape (per gain stage if it has one); ix and iy stay raw."""
    if key in ("ix", "iy"):
        return value
    if value.ndim > len(geometry.raw_shape):
        return geometry.assemble(value)
    return geometry.assemble_one(value)


def _open_cubes(plan: Plan, options: JobOptions) -> list[CubeFile]:
    files: list[CubeFile] = []
    try:
        for cube in plan.cubes:
            files.append(CubeFile(options.outdir / cube.file_name, options.force))
    except BaseException:
        for file in files:
            file.discard()
        raise
    return files


def _merge_scalars(
    par: Parallel, sd: SmallData, plan: Plan, local: accumulate.LocalEvents, files: list[CubeFile]
) -> None:
    sums = par.everywhere(
        lambda: accumulate.scalar_sums(sd, plan.settings.fields, local, plan.n_rows)
    )
    for array in sums.values():
        par.reduce_sum(array)

    def write() -> None:
        n_bins = plan.bins.n_bins
        for c, (cube, file) in enumerate(zip(plan.cubes, files, strict=True)):
            rows = slice(c * n_bins, (c + 1) * n_bins)
            file.write_bins(plan, cube, {k: v[rows] for k, v in sums.items()}, par.size)

    par.on_root(write)


def _merge_detectors(
    par: Parallel,
    plan: Plan,
    local: accumulate.LocalEvents,
    detectors: list[Detector],
    sources: list[FrameSource],
    files: list[CubeFile],
    budget: int,
) -> None:
    """Sum every detector's frames per (cube, bin) row, block by block of rows within budget.

    ``<det>_nEntries`` ends as the frames actually summed: fewer than planned when a
    frame source lacks frames of selected events.
    """
    if not detectors:
        return
    n_bins = plan.bins.n_bins
    entries = [plan.detector_entries(i) for i in range(len(detectors))]
    if par.is_root:
        for i, det in enumerate(detectors):
            for c, file in enumerate(files):
                file.add_detector(det.output, entries[i][c * n_bins : (c + 1) * n_bins])
    rows_with_frame = [
        np.where(plan.frames_present[i][local.events][:, None], local.rows, -1)
        for i in range(len(detectors))
    ]
    summed = [np.zeros(plan.n_rows, dtype=np.int64) for _ in detectors]
    active = np.flatnonzero(np.sum(entries, axis=0) > 0)
    bytes_per_row = 8 * sum(d.calibrator.n_pixels for d in detectors)
    for block in accumulate.row_blocks(active, bytes_per_row, budget):

        def add_frames(block: np.ndarray = block) -> list[tuple[np.ndarray, np.ndarray]]:
            sums = []
            for i, det in enumerate(detectors):
                acc = np.zeros((len(block), det.calibrator.n_pixels))
                rows = accumulate.block_rows(rows_with_frame[i], block, plan.n_rows)
                counts = sources[i].accumulate(det.calibrator, local.events, rows, acc)
                sums.append((acc, counts))
            return sums

        sums = par.everywhere(add_frames)
        for acc, counts in sums:
            par.reduce_sum(acc)
            par.reduce_sum(counts)

        def write(
            block: np.ndarray = block, sums: list[tuple[np.ndarray, np.ndarray]] = sums
        ) -> None:
            for i, det in enumerate(detectors):
                summed[i][block] = sums[i][1]
                for k, row in enumerate(block):
                    if sums[i][1][k] == 0:
                        continue
                    c, b = divmod(int(row), n_bins)
                    data = sums[i][0][k].reshape(det.calibrator.raw_shape)
                    if det.geometry is not None:
                        data = det.geometry.assemble_one(data)
                    files[c].write_bin(det.calibrator.name, b, data)

        par.on_root(write)
    par.on_root(lambda: _write_frame_counts(detectors, entries, summed, files, n_bins))


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
