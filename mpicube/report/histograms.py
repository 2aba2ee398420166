"""The numbers behind the summary page's field histograms and pixel histograms.

Field histograms: every ``hist_list`` field (or, without one, the file's ``ipm*/sum`` and
``tt/*`` fields), over all events of the run, with the filter bounds on that field and an
"N-1" overlay: the events that pass every *other* cut of the selection that cuts on it
(the laser rows of the on/off split are not part of it). A field no filter cuts on gets
the events passing all cuts of ``filter1`` as its overlay.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mpicube import selection
from mpicube.config import STANDARD_FILTER, FilterRow, RunSettings
from mpicube.detectors import make_calibrator
from mpicube.plan import Plan
from mpicube.smalldata import SmallData

DEFAULT_PERCENTILES = (0.5, 99.5)
DEFAULT_BIN_COUNT = 70
DEFAULT_FIELD = re.compile(r"^(ipm[^/]*/sum|tt/[^/]+)$")
PIXEL_FRAMES = 100
PIXEL_BIN_COUNT = 200
PIXEL_PERCENTILES = (0.01, 99.9)
NOISE_WIDTHS = 20  # the zoomed panel ends at median + this many MADs (or 3 x thresADU)
PIXEL_VALUES = 20_000_000  # at most this many pixel values are histogrammed (80 MB)


@dataclass(frozen=True)
class FieldHistogram:
    """One field's histogram: all events, the N-1 overlay, and the cuts drawn on it."""

    field: str
    edges: np.ndarray  # (n + 1,)
    counts: np.ndarray  # (n,) all events of the run
    overlay: np.ndarray | None  # (n,) events passing the other cuts, None if no cut applies
    overlay_label: str
    n_overlay: int  # events passing the other cuts (also outside the plotted range)
    n_finite: int  # events with a finite value
    n_outside: int  # finite values outside the plotted range
    cuts: tuple[FilterRow, ...]  # the filter rows on this field
    range_given: bool  # False: the range is the default percentile range


@dataclass(frozen=True)
class PixelHistogram:
    """Calibrated pixel values of a sample of one detector's frames (good pixels only)."""

    detector: str
    edges: np.ndarray
    counts: np.ndarray
    n_frames: int
    threshold: float | None
    n_below: int  # pixel values below the plotted range
    n_above: int  # pixel values above it
    zoom_edges: np.ndarray  # the low end of the range, where the noise and threshold are
    zoom_counts: np.ndarray
    stride: int = 1  # every stride-th good pixel of each frame is counted


def hist_fields(settings: RunSettings, sd: SmallData) -> tuple[list[str], list[str]]:
    """Return (fields to histogram that the file has, hist_list fields it lacks).

    Without a ``hist_list`` the default is the file's ``ipm*/sum`` and ``tt/*`` fields.
    """
    if settings.hist_list:
        wanted = list(settings.hist_list)
        present = [f for f in wanted if sd.has(f)]
        return present, [f for f in wanted if f not in present]
    return [f for f in sd.field_names() if DEFAULT_FIELD.match(f)], []


def field_histogram(
    field: str,
    spec: list[float] | None,
    values: np.ndarray,
    settings: RunSettings,
    read: Callable[[str], np.ndarray],
) -> FieldHistogram:
    """Return the histogram of ``values`` (field ``field``) with its cuts and N-1 overlay.

    ``spec`` is ``[low, high, n]`` or None for the default percentile range;
    ``read(path)`` returns any field as float64 (N,) for the other cuts.
    """
    finite = values[np.isfinite(values)]
    if spec is not None:
        low, high, n = spec[0], spec[1], max(1, int(spec[2]))
    else:
        low, high = _default_range(finite)
        n = DEFAULT_BIN_COUNT
    edges = np.linspace(low, high, n + 1)
    counts = np.histogram(finite, bins=edges)[0]
    outside = int(finite.size - counts.sum())
    cuts = tuple(r for r in settings.filters if r.field == field)
    names = [r.name for r in cuts] or [STANDARD_FILTER]
    name = STANDARD_FILTER if STANDARD_FILTER in names else names[0]
    others = [r for r in settings.filters if r.name == name and r.field != field]
    overlay, label, n_overlay = None, "", 0
    if others:
        keep = np.ones(values.shape, dtype=bool)
        for row in others:
            keep &= selection.row_passes(row, read(row.field))
        passing = values[keep]
        overlay = np.histogram(passing[np.isfinite(passing)], bins=edges)[0]
        n_overlay = int(keep.sum())
        what = "other cut" if cuts else "cut"
        label = f"passing the {len(others)} {what}{'s' if len(others) > 1 else ''} of {name}"
    return FieldHistogram(
        field, edges, counts, overlay, label, n_overlay, int(finite.size), outside, cuts,
        spec is not None,
    )  # fmt: skip


def _default_range(
    finite: np.ndarray, percentiles: tuple[float, float] = DEFAULT_PERCENTILES
) -> tuple[float, float]:
    """Return the plot range between two percentiles of the values, never empty."""
    if finite.size == 0:
        return 0.0, 1.0
    low, high = (float(v) for v in np.percentile(finite, percentiles))
    if high <= low:
        return low - 0.5, high + 0.5
    return low, high


def _noise_end(sample: np.ndarray, high: float) -> float:
    """Return where the noise peak of pixel values ends: median + NOISE_WIDTHS MADs."""
    if not sample.size:
        return high
    median = float(np.median(sample))
    mad = float(np.median(np.abs(sample - median)))
    return median + NOISE_WIDTHS * mad if mad > 0 else float(np.percentile(sample, 99.0))


def sample_events(plan: Plan, detector: int, n: int = PIXEL_FRAMES) -> np.ndarray:
    """Return up to ``n`` events spread over the run that are in a cube and have a frame."""
    candidates = np.flatnonzero((plan.bin_index >= 0).any(axis=0) & plan.frames_present[detector])
    if candidates.size <= n:
        return candidates
    return candidates[np.linspace(0, candidates.size - 1, n).round().astype(int)]


def pixel_histogram(sd: SmallData, plan: Plan, detector: int) -> PixelHistogram:
    """Return the histogram of calibrated good-pixel values (no threshold applied) of up to
    :data:`PIXEL_FRAMES` frames of detector number ``detector``.

    Frames are read and calibrated one at a time; of each, an evenly strided subset of the
    good pixels is kept, so that at most :data:`PIXEL_VALUES` values are held.
    """
    request = plan.settings.detectors[detector]
    constants = sd.detector_constants(request.source)
    calibrator = make_calibrator(constants, None, request.common_mode)
    good = np.ones(constants.raw_shape, bool) if constants.mask is None else constants.mask != 0
    frames = sd.raw_frames(request.source)
    events = sample_events(plan, detector)
    stride = max(1, -(-int(good.sum()) * len(events) // PIXEL_VALUES))
    values = np.concatenate(
        [
            calibrator.calibrate(np.ascontiguousarray(frames[int(event)]))[good][::stride]
            for event in events
        ]
        or [np.zeros(0, np.float32)]
    )
    low, high = _default_range(values, PIXEL_PERCENTILES)
    if request.thres_adu is not None:
        low, high = min(low, request.thres_adu), max(high, request.thres_adu)
    zoom_high = _noise_end(values, high)
    if request.thres_adu is not None:
        zoom_high = max(zoom_high, 3 * request.thres_adu)
    zoom_high = min(max(zoom_high, low + 1e-6 * (high - low)), high)
    edges = np.linspace(low, high, PIXEL_BIN_COUNT + 1)
    zoom_edges = np.linspace(low, zoom_high, PIXEL_BIN_COUNT + 1)
    counts = np.histogram(values, bins=edges)[0]
    zoom_counts = np.histogram(values, bins=zoom_edges)[0]
    below = int((values < low).sum())
    above = int((values > high).sum())
    return PixelHistogram(
        request.source, edges, counts, int(events.size), request.thres_adu, below, above,
        zoom_edges, zoom_counts, stride,
    )  # fmt: skip
