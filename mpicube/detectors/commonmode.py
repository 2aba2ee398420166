"""Common-mode numbers per detector type and the median corrections they stand for.

The numbers are the facility's: psana's algorithm 7 (``cmpars = (7, mode, ...)``, used by
``Detector.UtilsJungfrau.calib_jungfrau`` and ``UtilsEpix10ka.calib_epix10ka_any``) takes a
bit word ``mode``: 1 = median per row within a bank, 2 = median per column within a half
module, 4 = median per bank, applied in the order banks, rows, columns. A bank is a block of
(module rows / 2) x (module columns / n_banks) pixels: Jungfrau 256 x 64 (16 banks per half
module), ePix10ka 176 x 48 and ePix100 352 x 96 (8 banks per half). smalldata_tools, whose
detector dicts the cube config uses, names them per type: Jungfrau 71 = rows, 72 = columns,
7 = rows + columns; ePix10ka 80 = none, 84 = columns (psana mode 2), 85 = rows + columns.
mpicube accepts for every type ``0`` (none) and ``70 + mode`` (71 ... 77), plus those
smalldata_tools aliases. Any other number is refused.

Pixels used for a median: good (mask), unswitched (gain stage 0), finite constants, and
below a photon threshold: a first median ``m`` of those pixels in the group, then the median
of those with ``adu < m + PHOTON_RMS * rms``. A group with fewer than
``min(MIN_PIXELS, its size // 2)`` such pixels is not corrected. The correction is
subtracted (in ADU, before the gain) from the group's stage-0 pixels only: a switched
pixel's offset is not the unswitched one's.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from mpicube.errors import CubeError

ROWS, COLUMNS, BANKS = 1, 2, 4
PHOTON_RMS = 5.0
MIN_PIXELS = 10

#: Banks per half module (psana's split of a module's columns).
BANKS_PER_HALF = {"jungfrau": 16, "epix10ka": 8, "epix100": 8}

#: None -> this number, per detector type.
DEFAULTS = {"jungfrau": 0, "epix10ka": 80, "epix100": 76}

_GENERIC = {0: 0, **{70 + mode: mode for mode in range(1, 8)}}
_ALIASES = {
    "jungfrau": {7: ROWS | COLUMNS},
    "epix10ka": {80: 0, 84: COLUMNS, 85: ROWS | COLUMNS},
    "epix100": {},
}

#: Every number some detector type accepts (the config checks against this).
ALL_NUMBERS = frozenset(_GENERIC) | frozenset(n for a in _ALIASES.values() for n in a)


def psana_mode(detector_type: str, number: int | None) -> int:
    """Return the psana bit word (0 = no correction) of ``number`` for ``detector_type``.

    None gives the type's default (:data:`DEFAULTS`). Raises CubeError for a number the type
    does not accept.
    """
    kind = str(detector_type).lower()
    if number is None:
        number = DEFAULTS[kind]
    table = {**_GENERIC, **_ALIASES[kind]}
    if number not in table:
        raise CubeError(
            f"common_mode {number} is not supported for {kind} detectors "
            f"(supported: {', '.join(map(str, sorted(table)))})"
        )
    return table[number]


@dataclass(frozen=True)
class Layout:
    """The common-mode groups of one module: half-module rows and bank width in columns."""

    half_rows: int
    bank_cols: int


def layout(detector_type: str, raw_shape: tuple[int, ...]) -> Layout:
    """Return the module's group layout, or raise CubeError if the shape cannot be split."""
    rows, cols = raw_shape[-2:]
    n_banks = BANKS_PER_HALF[str(detector_type).lower()]
    if rows % 2 or cols % n_banks:
        raise CubeError(
            f"common mode needs modules of even rows and columns divisible by "
            f"{n_banks}, got {rows} x {cols}"
        )
    return Layout(rows // 2, cols // n_banks)


def correct(adu: np.ndarray, usable: np.ndarray, rms0: np.ndarray, mode: int, lay: Layout) -> None:
    """Subtract the common mode from ``adu`` in place (usable pixels only); return None.

    adu: (modules, rows, cols) float64 pedestal-subtracted values; usable: same shape bool,
    the good stage-0 pixels; rms0: same shape, the stage-0 pedestal rms in ADU.
    """
    m, rows, cols = adu.shape
    h, w = lay.half_rows, lay.bank_cols
    nb = cols // w
    if mode & BANKS:  # groups: (module, half, bank) -> (h, w) blocks
        _apply(adu, usable, rms0, (m, 2, h, nb, w), (2, 4))
    if mode & ROWS:  # groups: (module, row, bank) -> w pixels
        _apply(adu, usable, rms0, (m, rows, nb, w), (3,))
    if mode & COLUMNS:  # groups: (module, half, column) -> h pixels
        _apply(adu, usable, rms0, (m, 2, h, cols), (2,))


def _apply(
    adu: np.ndarray,
    usable: np.ndarray,
    rms0: np.ndarray,
    shape: tuple[int, ...],
    axes: tuple[int, ...],
) -> None:
    """Subtract each group's median (groups: ``shape`` reduced over ``axes``); return None."""
    view = adu.reshape(shape)
    values = np.where(usable, adu, np.nan).reshape(shape)
    size = int(np.prod([shape[a] for a in axes]))
    min_pixels = min(MIN_PIXELS, max(1, size // 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN groups
        first = np.nanmedian(values, axis=axes, keepdims=True)
        below = np.where(values < first + PHOTON_RMS * rms0.reshape(shape), values, np.nan)
        cm = np.nanmedian(below, axis=axes, keepdims=True)
    count = np.sum(~np.isnan(below), axis=axes, keepdims=True)
    cm = np.where((count >= min_pixels) & np.isfinite(cm), cm, 0.0)
    view -= np.where(usable.reshape(shape), cm, 0.0)
