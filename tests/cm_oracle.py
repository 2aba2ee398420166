"""An independent reference for calibration with common mode and thresRms: plain loops.

Nothing here imports mpicube; the rules are the README's (common_mode numbers, groups,
photon threshold, minimum pixels).
"""

from __future__ import annotations

import numpy as np

BANKS_PER_HALF = {"jungfrau": 16, "epix10ka": 8, "epix100": 8}
# number -> (banks, rows, columns) per type; None -> default
NUMBERS = {
    "jungfrau": {None: 0, 0: 0, 7: 3},
    "epix10ka": {None: 0, 0: 0, 80: 0, 84: 2, 85: 3},
    "epix100": {None: 6, 0: 0},
}
for _table in NUMBERS.values():
    _table.update({70 + m: m for m in range(1, 8)})


def stage_and_adc(word: int, kind: str) -> tuple[int, int]:
    """Return (gain stage or -1 if invalid, ADC value) of one raw word."""
    if kind == "jungfrau":
        return {0: 0, 1: 1, 2: -1, 3: 2}[word >> 14], word & 0x3FFF
    if kind == "epix10ka":
        return (word >> 14) & 1, word & 0x3FFF
    return 0, word


def _median_cm(values: list[float], rms: list[float], size: int) -> float:
    """Return the group's common mode: median below (first median + 5 rms), or 0."""
    if not values:
        return 0.0
    first = float(np.median(values))
    below = [v for v, r in zip(values, rms, strict=True) if v < first + 5.0 * r]
    if len(below) < min(10, max(1, size // 2)):
        return 0.0
    return float(np.median(below))


def calibrate(raw, ped, gain, rms, mask, kind, common_mode, thres_adu=None, thres_rms=None):
    """Return one frame (raw_shape) calibrated with the given common mode and thresholds."""
    raw = np.asarray(raw).astype(np.int64)
    shape = raw.shape
    mods = raw.reshape(-1, *shape[-2:])
    n_mod, rows, cols = mods.shape
    stages = ped.shape[0]
    ped = ped.reshape(stages, n_mod, rows, cols).astype(np.float64)
    gain = gain.reshape(stages, n_mod, rows, cols).astype(np.float64)
    rms = rms.reshape(stages, n_mod, rows, cols).astype(np.float64)
    mask = np.ones((n_mod, rows, cols)) if mask is None else mask.reshape(n_mod, rows, cols)
    adu = np.zeros((n_mod, rows, cols))
    stage = np.zeros((n_mod, rows, cols), np.int64)
    good = np.zeros((n_mod, rows, cols), bool)
    for m, r, c in np.ndindex(n_mod, rows, cols):
        s, adc = stage_and_adc(int(mods[m, r, c]), kind)
        stage[m, r, c] = s
        if s < 0:
            continue
        p, g = ped[s, m, r, c], gain[s, m, r, c]
        if mask[m, r, c] and np.isfinite(p) and np.isfinite(g) and g != 0:
            good[m, r, c] = True
            adu[m, r, c] = adc - p
    bits = NUMBERS[kind][common_mode]
    half, width = rows // 2, cols // BANKS_PER_HALF[kind]

    def correct(groups):
        for group in groups:
            use = [p for p in group if good[p] and stage[p] == 0]
            cm = _median_cm([adu[p] for p in use], [rms[(0, *p)] for p in use], len(group))
            for p in use:
                adu[p] -= cm

    for m in range(n_mod):
        if bits & 4:
            correct(
                [
                    [
                        (m, r, c)
                        for r in range(h * half, (h + 1) * half)
                        for c in range(b * width, (b + 1) * width)
                    ]
                    for h in range(2)
                    for b in range(cols // width)
                ]
            )
        if bits & 1:
            correct(
                [
                    [(m, r, c) for c in range(b * width, (b + 1) * width)]
                    for r in range(rows)
                    for b in range(cols // width)
                ]
            )
        if bits & 2:
            correct(
                [
                    [(m, r, c) for r in range(h * half, (h + 1) * half)]
                    for h in range(2)
                    for c in range(cols)
                ]
            )
    out = np.zeros((n_mod, rows, cols))
    for p in np.ndindex(n_mod, rows, cols):
        if not good[p]:
            continue
        s = stage[p]
        value = adu[p] / gain[(s, *p)]
        if thres_adu is not None and value < thres_adu:
            continue
        if thres_rms is not None and not value >= thres_rms * rms[(s, *p)] / abs(gain[(s, *p)]):
            continue
        out[p] = value
    return out.reshape(shape)
