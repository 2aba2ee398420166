"""The logbook summary: one self-contained HTML page per run, its PNG plots embedded.

Sections: the cubes (counts per cube, empty selections), the events per bin of every
cube, the field histograms (with cut bounds and the N-1 overlay) and one pixel-value
histogram per area detector. Fields of ``hist_list`` that the file lacks are listed.
"""

from __future__ import annotations

import base64
import html
import logging
import os
import time
from pathlib import Path

import numpy as np

from mpicube import __version__, selection
from mpicube.plan import Plan
from mpicube.report import histograms, plots
from mpicube.report.runlog import bins_line, frames_per_cube
from mpicube.smalldata import SmallData

log = logging.getLogger("mpicube")

STYLE = """
body { font-family: sans-serif; margin: 1.5em; color: #222; max-width: 1300px; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 1em; }
figure { margin: 0; } img { max-width: 100%; }
figcaption { font-size: 0.85em; color: #444; }
.note { background: #fff4d6; padding: 0.4em 0.8em; }
pre { font-size: 0.85em; background: #f4f4f4; padding: 0.5em; overflow-x: auto; }
"""


def summary_path(summary_dir: Path, experiment: str, run: int) -> Path:
    """Return the path of a run's summary page: ``<dir>/Cube_<exp>_Run<NNNN>_summary.html``."""
    return summary_dir / f"Cube_{experiment}_Run{run:04d}_summary.html"


def write_summary_logged(plan: Plan, summary_dir: Path) -> Path | None:
    """Write the summary page and log where; return its path, or None if it failed.

    A failure is logged as a warning and never raised: the cubes are already written.
    """
    try:
        path = write_summary(plan, summary_dir)
    except Exception as exc:  # the report must never fail the cube
        log.warning("summary page not written: %s: %s", type(exc).__name__, exc)
        return None
    log.info("summary page: %s", path)
    return path


def write_summary(plan: Plan, summary_dir: Path) -> Path:
    """Write the run's summary page (atomically) into ``summary_dir``; return its path."""
    page = render(plan)
    path = summary_path(summary_dir, plan.experiment, plan.run)
    summary_dir.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    temp.write_text(page, encoding="utf-8")
    os.replace(temp, path)
    return path


def render(plan: Plan) -> str:
    """Return the summary page of a planned (and cubed) run as one HTML string."""
    settings = plan.settings
    with SmallData(plan.input_path) as sd:
        cache: dict[str, np.ndarray] = {}

        def read(path: str) -> np.ndarray:
            if path not in cache:
                cache[path] = sd.read_scalar(path)
            return cache[path]

        present, missing = histograms.hist_fields(settings, sd)
        fields = [
            histograms.field_histogram(f, settings.hist_list.get(f), read(f), settings, read)
            for f in present
        ]
        pixels = [histograms.pixel_histogram(sd, plan, d) for d in range(len(settings.detectors))]
    title = f"Cube summary: {plan.experiment} run {plan.run}"
    parts = [
        f"<h1>{_e(title)}</h1>",
        f"<p>{plan.n_events} events in <code>{_e(plan.input_path)}</code>; config "
        f"<code>{_e(plan.config_path)}</code>; {_e(bins_line(plan.bins))}.<br>"
        f"Made by mpicube {__version__} on {_e(time.strftime('%Y-%m-%d %H:%M:%S'))}.</p>",
        *_cubes_section(plan),
        "<h2>Events per bin</h2>",
        _figure(
            "bins",
            "events per bin",
            plots.bins_png(plan.bins, _cube_counts(plan)),
            "Events per bin of every cube (divide the cube sums by these).",
        ),  # fmt: skip
        *_fields_section(fields, missing, bool(settings.hist_list)),
        *_pixels_section(pixels),
    ]
    body = "\n".join(parts)
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{_e(title)}'
        f"</title><style>{STYLE}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def _cube_counts(plan: Plan) -> list[tuple[str, np.ndarray]]:
    """Return (short label, nEntries) per cube: the file name without the common prefix."""
    prefix = f"Cube_{plan.experiment}_Run{plan.run:04d}_"
    return [(c.file_name.removeprefix(prefix).removesuffix(".h5"), c.n_entries) for c in plan.cubes]


def _cubes_section(plan: Plan) -> list[str]:
    detectors = [d.source for d in plan.settings.detectors]
    head = "".join(
        f"<th>{_e(h)}</th>"
        for h in ["cube", "selected", "binned", "below", "above", "NaN",
                  *(f"{d} frames" for d in detectors)]
    )  # fmt: skip
    frames = [frames_per_cube(plan, d) for d in range(len(detectors))]
    rows = []
    for c, cube in enumerate(plan.cubes):
        k = cube.bin_counts
        cells = [cube.n_selected, k.binned, k.below, k.above, k.nan, *(f[c] for f in frames)]
        rows.append(
            f"<tr><td>{_e(cube.file_name)}</td>" + "".join(f"<td>{v}</td>" for v in cells) + "</tr>"
        )
    out = ["<h2>Cubes</h2>", f'<table id="cubes"><tr>{head}</tr>', *rows, "</table>"]
    for cube in plan.empty_cubes:
        lines = [
            selection.NO_EVENT_LINE,
            *selection.filter_log_lines(cube.row_counts, plan.n_events),
        ]
        out.append(
            f'<p class="note">{_e(cube.file_name)}: no event selected, no file written.</p>'
            f"<pre>{_e(chr(10).join(lines))}</pre>"
        )
    return out


def _fields_section(
    fields: list[histograms.FieldHistogram], missing: list[str], from_hist_list: bool
) -> list[str]:
    source = "the config's hist_list" if from_hist_list else "default: the IPM and timetool fields"
    out = ["<h2>Fields</h2>", f"<p>Histograms of all events of the run ({_e(source)}).</p>"]
    if missing:
        out.append(
            '<p class="note" id="missing-fields">Not in the smalldata file, not plotted: '
            + ", ".join(f"<code>{_e(f)}</code>" for f in missing)
            + "</p>"
        )
    figures = []
    for h in fields:
        caption = (
            f"{h.field}: {h.n_finite} events with a value, {h.n_outside} outside the plotted "
            f"range [{h.edges[0]:g}, {h.edges[-1]:g}]"
            + ("" if h.range_given else " (default: central 99% of the values)")
        )
        if h.overlay is not None:
            caption += f"; {h.n_overlay} events {h.overlay_label}"
        if h.cuts:
            caption += "; cuts: " + ", ".join(f"{c.describe()} ({c.name})" for c in h.cuts)
        figures.append(_figure(f"field-{h.field}", h.field, plots.field_png(h), caption))
    if not fields:
        out.append("<p>No field to show.</p>")
    out.append(f'<div class="grid">{"".join(figures)}</div>')
    return out


def _pixels_section(pixels: list[histograms.PixelHistogram]) -> list[str]:
    if not pixels:
        return []
    figures = []
    for p in pixels:
        threshold = "no threshold" if p.threshold is None else f"thresADU {p.threshold:g}"
        caption = (
            f"{p.detector}: calibrated values of "
            f"{'the' if p.stride == 1 else f'every {p.stride}th of the'} good pixels of "
            f"{p.n_frames} frames "
            f"(before the threshold; {threshold}); {p.n_below} values below and {p.n_above} "
            f"above the plotted range [{p.edges[0]:g}, {p.edges[-1]:g}]."
        )
        figures.append(_figure(f"pixels-{p.detector}", f"{p.detector} pixels",
                               plots.pixels_png(p), caption))  # fmt: skip
    return ["<h2>Area detectors</h2>", *figures]


def _figure(ident: str, alt: str, png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure id="{_e(ident)}"><img alt="{_e(alt)}" src="data:image/png;base64,{data}">'
        f"<figcaption>{_e(caption)}</figcaption></figure>"
    )


def _e(value: object) -> str:
    return html.escape(str(value))
