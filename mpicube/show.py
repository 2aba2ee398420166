"""``mpicube show CUBE.h5``: a cube file at a glance (bins, counts, datasets, provenance).

Cubes of more than ``ALL_BINS_UP_TO`` bins list only their non-empty bins.
"""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np

from mpicube.errors import CubeError

ALL_BINS_UP_TO = 40

COUNT_ATTRS = (
    ("events_in_run", "in the run"),
    ("events_selected", "selected"),
    ("events_binned", "binned"),
    ("events_below_bins", "below the bins"),
    ("events_above_bins", "above"),
    ("events_nan_bin_value", "with a NaN bin value"),
)


def describe(path: Path, config_text: bool = False) -> str:
    """Return the text ``mpicube show`` prints for the cube at ``path``.

    ``config_text``: include the config file's text (else only its line count).
    """
    if not path.is_file():
        raise CubeError(f"{path}: no such file")
    try:
        with h5py.File(path, "r", locking=False) as h5:
            if "binVar_bins" not in h5 or "nEntries" not in h5:
                raise CubeError(f"{path}: not a cube file (no binVar_bins or nEntries)")
            return "\n".join(
                [str(path), *_provenance(h5.attrs, config_text), *_bins(h5), *_datasets(h5)]
            )
    except OSError as exc:
        raise CubeError(f"{path}: cannot open as a cube: {exc}") from exc


def _provenance(attrs: h5py.AttributeManager, config_text: bool) -> list[str]:
    """Return the lines on what made the cube: run, selection, counts, code, config."""
    get = attrs.get
    lines = [
        f"  run {get('run')} of {get('experiment')}, laser {get('laser')}, "
        f"filter {get('filter_name')}; from {get('input_file')}",
        f"  made by mpicube {get('mpicube_version')} on {get('n_ranks')} ranks at {get('created')}",
        "  events: "
        + ", ".join(f"{int(attrs[key])} {what}" for key, what in COUNT_ATTRS if key in attrs),
    ]
    for row in json.loads(get("filters", "[]")):
        lines.append(f"  filter: {row['low']} < {row['field']} < {row['high']} ({row['name']})")
    sources = " + ".join(str(s) for s in np.atleast_1d(get("bin_sources", [])))
    lines.append(f"  bins: {get('bin_mode')} on {get('bin_field')} ({sources})")
    text = str(get("config_text", ""))
    lines.append(f"  config: {get('config_file')} ({len(text.splitlines())} lines)")
    if config_text:
        lines.extend(f"    | {line}" for line in text.splitlines())
    return lines


def _bins(h5: h5py.File) -> list[str]:
    """Return the per-bin table: edges, nEntries and each detector's frame count."""
    labels = h5["binVar_bins"][()]
    edges = np.asarray(h5.attrs.get("bin_edges", np.full(len(labels) + 1, np.nan)))
    counts = {"nEntries": h5["nEntries"][()]}
    for name in sorted(h5):
        if name.endswith("_nEntries"):
            counts[name] = h5[name][()]
    header = f"  {'bin':>5} {'low':>12} {'high':>12}" + "".join(f" {n:>14}" for n in counts)
    shown = np.arange(len(labels))
    note = ""
    if len(labels) > ALL_BINS_UP_TO:
        shown = np.flatnonzero(counts["nEntries"] > 0)
        note = f" ({len(labels) - len(shown)} empty, not listed)"
    lines = [f"  {len(labels)} bins{note}, {int(counts['nEntries'].sum())} events in them:", header]
    for i in shown:
        row = f"  {i:>5} {edges[i]:>12.6g} {edges[i + 1]:>12.6g}"
        lines.append(row + "".join(f" {int(c[i]):>14}" for c in counts.values()))
    return lines


def _datasets(h5: h5py.File) -> list[str]:
    """Return one line per dataset: name, shape, dtype."""
    lines = ["  datasets:"]

    def visit(name: str, obj: h5py.HLObject) -> None:
        if isinstance(obj, h5py.Dataset):
            lines.append(f"    {name:<32} {str(obj.shape):<24} {obj.dtype}")

    h5.visititems(visit)
    return lines
