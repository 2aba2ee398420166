"""The summary page's figures, drawn with matplotlib's Agg backend and returned as PNG bytes."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from mpicube.binning import Bins  # noqa: E402
from mpicube.report.histograms import FieldHistogram, PixelHistogram  # noqa: E402

SIZE = (6.0, 3.6)
DPI = 90
CUT_COLORS = ("tab:red", "tab:purple", "tab:brown", "tab:pink")


def field_png(hist: FieldHistogram) -> bytes:
    """Return the PNG of a field histogram: all events, the N-1 overlay and the cut bounds."""
    fig, ax = plt.subplots(figsize=SIZE)
    ax.stairs(hist.counts, hist.edges, fill=True, color="0.75", label="all events")
    if hist.overlay is not None:
        ax.stairs(hist.overlay, hist.edges, color="tab:blue", lw=1.5, label=hist.overlay_label)
    low, high = hist.edges[0], hist.edges[-1]
    for i, cut in enumerate(hist.cuts):
        color = CUT_COLORS[i % len(CUT_COLORS)]
        for j, bound in enumerate((cut.low, cut.high)):
            if low <= bound <= high:
                label = f"cut {cut.name}: {cut.low:g} < x < {cut.high:g}" if j == 0 else None
                ax.axvline(bound, color=color, ls="--", lw=1.2, label=label)
    ax.set_xlim(low, high)
    ax.set_xlabel(hist.field)
    ax.set_ylabel("events")
    ax.legend(fontsize=7, loc="best")
    return _png(fig)


def bins_png(bins: Bins, cubes: list[tuple[str, np.ndarray]]) -> bytes:
    """Return the PNG of the events per bin of every cube, one step line per cube.

    In scan mode the outlier bin (below the first position) is left out of the plot.
    """
    fig, ax = plt.subplots(figsize=SIZE)
    edges = bins.edges
    first = 1 if bins.mode == "scan" else 0
    if bins.mode == "scan":  # positions: plot each bin at its position, last one unit wide
        positions = edges[1:-1]
        step = np.diff(positions).min() if positions.size > 1 else 1.0
        edges = np.concatenate((positions, [positions[-1] + step]))
    for label, n_entries in cubes:
        ax.stairs(n_entries[first:], edges, lw=1.5, label=label)
    ax.set_xlabel(bins.field if bins.mode != "delay" else "delay (ps)")
    ax.set_ylabel("events per bin")
    ax.legend(fontsize=7, loc="best")
    return _png(fig)


def pixels_png(hist: PixelHistogram) -> bytes:
    """Return the PNG of a detector's pixel-value histogram (log scale) with its threshold:
    the whole range on the left, its low end (noise and threshold) on the right."""
    fig, axes = plt.subplots(1, 2, figsize=(2 * SIZE[0], SIZE[1]))
    panels = ((hist.edges, hist.counts, "all"), (hist.zoom_edges, hist.zoom_counts, "low end"))
    for ax, (edges, counts, title) in zip(axes, panels, strict=True):
        ax.stairs(counts, edges, fill=True, baseline=0.5, color="tab:green", alpha=0.7,
                  label=f"{hist.n_frames} frames, no threshold")  # fmt: skip
        if hist.threshold is not None:
            ax.axvline(hist.threshold, color="tab:red", ls="--",
                       label=f"thresADU = {hist.threshold:g}")  # fmt: skip
        ax.set_yscale("log")
        ax.set_title(f"{hist.detector}: {title}", fontsize=9)
        ax.set_xlabel("calibrated pixel value")
        ax.set_ylabel("pixels")
        ax.legend(fontsize=7, loc="best")
    return _png(fig)


def _png(fig: Figure) -> bytes:
    """Return the figure as PNG bytes and close it."""
    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=DPI)
    plt.close(fig)
    return buffer.getvalue()
