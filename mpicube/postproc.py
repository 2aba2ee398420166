"""Post-processing of binned detector sums (``det_proc``): a registry of small functions.

A detector dict's ``det_proc`` is ``{key: {'func': name, **arguments}}`` (``func`` may be
left out when the key is the function's name). Each function runs on rank 0 on every bin's
sum and its result is stored as ``<det>_<key>``, shape ``(nBins, ...)``:

- ``azav``: azimuthal average, the mean of the good pixels in each radial bin, from the
  raw-shaped sum and the pixel positions ``x``, ``y`` (µm). Arguments: ``distance`` (mm,
  sample to detector, required), ``center`` ([x, y] µm of the beam, default [0, 0]),
  ``nbins`` (default 100), ``unit`` (``'2th_deg'``, default, or ``'q_A^-1'`` with
  ``energy_kev``), ``range`` ([low, high] in that unit, default all pixels). Radial bins
  with no pixel are NaN; the dataset's attributes hold the bin centres (``axis``), the
  ``unit`` and the pixels per bin (``pixels``).
- ``roi_sum``: sum over ``roi`` (a ``[start, stop]`` pair per axis of ``<det>_data``).
- ``roi_image``: the ``roi`` cut out of ``<det>_data``.
- ``projection``: sum along ``axis`` (of ``<det>_data``), over ``roi`` if given.

``<det>_data`` is the assembled image when ``image`` is true, else the raw tiles, so ROIs
and axes refer to that array. :func:`parse` checks names and argument types when the config
is read; :func:`bind` checks them against the detector's shape before any frame is read.
"""

from __future__ import annotations

import numbers
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mpicube.detectors import DetectorConstants
from mpicube.errors import CubeError

HC_KEV_ANGSTROM = 12.398419843320026
RESERVED_KEYS = ("data", "nEntries", "cfg")
_KEY = re.compile(r"^[A-Za-z0-9_]+$")


@dataclass(frozen=True)
class ProcSpec:
    """One validated ``det_proc`` entry: output key, function name and its arguments."""

    key: str
    func: str
    args: dict[str, Any]


@dataclass(frozen=True)
class PostProc:
    """A post-processing function bound to one detector's shapes and constants."""

    key: str
    shape: tuple[int, ...]  # of one bin's result
    run: Callable[[np.ndarray, np.ndarray], np.ndarray] = field(repr=False)
    attrs: dict[str, Any] = field(default_factory=dict)

    def apply(self, raw_sum: np.ndarray, data: np.ndarray) -> np.ndarray:
        """Return this function's result for one bin (raw-shaped sum, stored data)."""
        return np.asarray(self.run(raw_sum, data), dtype=np.float64).reshape(self.shape)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _pair(value: Any, check: Callable[[Any], bool]) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == 2 and all(map(check, value))


def _roi(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) > 0
        and all(_pair(p, _is_int) and p[0] < p[1] for p in value)
    )


# function -> {argument: (required, check, what it must be)}
_ARGUMENTS: dict[str, dict[str, tuple[bool, Callable[[Any], bool], str]]] = {
    "azav": {
        "distance": (True, lambda v: _is_number(v) and v > 0, "a positive number (mm)"),
        "center": (False, lambda v: _pair(v, _is_number), "[x, y] in µm"),
        "nbins": (False, lambda v: _is_int(v) and v > 0, "a positive integer"),
        "unit": (False, lambda v: v in ("2th_deg", "q_A^-1"), "'2th_deg' or 'q_A^-1'"),
        "energy_kev": (False, lambda v: _is_number(v) and v > 0, "a positive number (keV)"),
        "range": (False, lambda v: _pair(v, _is_number) and v[0] < v[1], "[low, high]"),
    },
    "roi_sum": {"roi": (True, _roi, "a list of [start, stop] integer pairs, one per axis")},
    "roi_image": {"roi": (True, _roi, "a list of [start, stop] integer pairs, one per axis")},
    "projection": {
        "axis": (True, _is_int, "an integer axis"),
        "roi": (False, _roi, "a list of [start, stop] integer pairs, one per axis"),
    },
}

FUNCTIONS = tuple(_ARGUMENTS)


def parse(value: Any) -> tuple[ProcSpec, ...]:
    """Return the validated entries of a ``det_proc`` value (None or {} give none).

    Raises ValueError with a one-line reason for a wrong format, an unknown function or
    argument, a missing argument or one of the wrong type.
    """
    if value is None:
        return ()
    if not isinstance(value, dict):
        raise ValueError("det_proc must be a dict {key: {'func': name, arguments...}}")
    specs = []
    for key, entry in value.items():
        if not isinstance(key, str) or not _KEY.match(key) or key in RESERVED_KEYS:
            raise ValueError(
                f"det_proc key {key!r} must be letters, digits or _ and not one of {RESERVED_KEYS}"
            )
        if not isinstance(entry, dict):
            raise ValueError(f"det_proc {key!r} must be a dict of arguments")
        args = {k: v for k, v in entry.items() if k != "func"}
        func = entry.get("func", key)
        if func not in _ARGUMENTS:
            raise ValueError(
                f"det_proc {key!r}: unknown function {func!r} (known: {', '.join(FUNCTIONS)})"
            )
        known = _ARGUMENTS[func]
        for name in args:
            if name not in known:
                raise ValueError(
                    f"det_proc {key!r}: {func} has no argument {name!r} "
                    f"(arguments: {', '.join(known)})"
                )
        for name, (required, check, what) in known.items():
            if name not in args:
                if required:
                    raise ValueError(f"det_proc {key!r}: {func} needs {name!r} ({what})")
            elif not check(args[name]):
                raise ValueError(f"det_proc {key!r}: {name} must be {what}, not {args[name]!r}")
        if func == "azav" and args.get("unit") == "q_A^-1" and "energy_kev" not in args:
            raise ValueError(f"det_proc {key!r}: unit 'q_A^-1' needs 'energy_kev'")
        specs.append(ProcSpec(key, func, args))
    return tuple(specs)


def bind(
    specs: tuple[ProcSpec, ...],
    constants: DetectorConstants,
    data_shape: tuple[int, ...],
    where: str,
) -> list[PostProc]:
    """Return the functions of ``specs`` bound to a detector whose ``<det>_data`` bins have
    ``data_shape``; raise CubeError (prefixed with ``where``) if one does not fit it."""
    procs = []
    for spec in specs:
        try:
            procs.append(_BINDERS[spec.func](spec, constants, data_shape))
        except ValueError as exc:
            raise CubeError(f"{where}: {constants.name}: det_proc {spec.key!r}: {exc}") from None
    return procs


def _slices(roi: Any, shape: tuple[int, ...]) -> tuple[slice, ...]:
    """Return ``roi`` as slices, or raise ValueError unless it fits inside ``shape``."""
    if roi is None:
        return tuple(slice(None) for _ in shape)
    if len(roi) != len(shape):
        raise ValueError(f"roi {roi} has {len(roi)} axes, the data {shape} has {len(shape)}")
    for (start, stop), size in zip(roi, shape, strict=True):
        if start < 0 or stop > size:
            raise ValueError(f"roi {roi} is outside the data shape {shape}")
    return tuple(slice(int(a), int(b)) for a, b in roi)


def _bind_roi_sum(spec: ProcSpec, constants: DetectorConstants, shape: tuple[int, ...]) -> PostProc:
    cut = _slices(spec.args["roi"], shape)
    return PostProc(spec.key, (), lambda raw, data: data[cut].sum())


def _bind_roi_image(
    spec: ProcSpec, constants: DetectorConstants, shape: tuple[int, ...]
) -> PostProc:
    cut = _slices(spec.args["roi"], shape)
    out = tuple(s.stop - s.start for s in cut)
    return PostProc(spec.key, out, lambda raw, data: data[cut])


def _bind_projection(
    spec: ProcSpec, constants: DetectorConstants, shape: tuple[int, ...]
) -> PostProc:
    cut = _slices(spec.args.get("roi"), shape)
    axis = spec.args["axis"]
    if not -len(shape) <= axis < len(shape):
        raise ValueError(f"axis {axis} does not exist in the data shape {shape}")
    kept = np.zeros(shape)[cut].sum(axis=axis).shape
    return PostProc(spec.key, kept, lambda raw, data: data[cut].sum(axis=axis))


def _bind_azav(spec: ProcSpec, constants: DetectorConstants, shape: tuple[int, ...]) -> PostProc:
    if constants.x is None or constants.y is None:
        raise ValueError("azav needs the pixel positions x and y in UserDataCfg")
    args = spec.args
    cx, cy = args.get("center", (0.0, 0.0))
    unit = args.get("unit", "2th_deg")
    radius_um = np.hypot(
        np.asarray(constants.x, np.float64) - cx, np.asarray(constants.y, np.float64) - cy
    ).ravel()
    two_theta = np.arctan2(radius_um, args["distance"] * 1000.0)
    if unit == "q_A^-1":
        coordinate = 4 * np.pi * np.sin(two_theta / 2) * args["energy_kev"] / HC_KEV_ANGSTROM
    else:
        coordinate = np.degrees(two_theta)
    good = np.ones(coordinate.shape, bool)
    if constants.mask is not None:
        good = np.asarray(constants.mask).ravel() != 0
    nbins = args.get("nbins", 100)
    low, high = args.get("range", (coordinate[good].min(), coordinate[good].max()))
    edges = np.linspace(low, high, nbins + 1)
    index = np.clip(np.searchsorted(edges, coordinate, side="right") - 1, 0, nbins - 1)
    inside = good & (coordinate >= low) & (coordinate <= high)
    pixels = np.flatnonzero(inside)
    bins = index[pixels]
    counts = np.bincount(bins, minlength=nbins)

    def run(raw: np.ndarray, data: np.ndarray) -> np.ndarray:
        sums = np.bincount(bins, weights=raw.ravel()[pixels], minlength=nbins)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, sums / counts, np.nan)

    attrs = {"axis": (edges[:-1] + edges[1:]) / 2, "unit": unit, "pixels": counts}
    return PostProc(spec.key, (nbins,), run, attrs)


_BINDERS: dict[str, Callable[[ProcSpec, DetectorConstants, tuple[int, ...]], PostProc]] = {
    "azav": _bind_azav,
    "roi_sum": _bind_roi_sum,
    "roi_image": _bind_roi_image,
    "projection": _bind_projection,
}
