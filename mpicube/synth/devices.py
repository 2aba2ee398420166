"""Scalar devices of a synthetic run: timing, light status, EVR, monitors, scan, timetool, damage.

Each device is one function that returns the datasets it writes, keyed by their path in the
smalldata file (contract §1). :func:`make_events` runs them all and also returns the per-event
"truth" (beam intensity, Bragg-peak factor) that the area-detector writers turn into frames.

Conventions chosen here:

- The X-ray/laser delay actually seen by a shot is ``nominal + jitter`` (ps). The timetool
  measures the jitter: ``tt/ttCorr = jitter + 0.02 ps noise`` and ``tt/FLTPOS_PS = ttCorr +
  0.02 ps noise``, so ``delay = nominal + tt/ttCorr`` as in contract §4.
- On shots without both X-rays and laser the timetool finds no edge and all five ``tt/*``
  fields are 0 (not NaN), so laser-off shots still bin on their nominal delay.
- The laser is off on every 4th shot (``i % 4 == 3``); ``evr/code_41`` fires in alternating
  blocks of 60 shots (on first); ``evr/code_94`` never fires.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

EVENT_RATE_HZ = 120
START_SECONDS = 1_678_881_600  # 2023-03-15 12:00:00 UTC
START_FIDUCIAL = 30_003
IPM2_REF = 1.5e4  # median ipm2/sum of a good shot: the detector signal scales with ipm2/IPM2_REF
DELAY_RANGE_S = (-2e-12, 10e-12)  # nominal delays of a delay scan
FIXED_DELAY_S = 2e-12  # nominal delay of step scans and static runs
GON_Y_CENTER = 12.0  # mm, top of the rocking curve
GON_Y_HALF_RANGE = 0.5  # mm, a step scan covers center +- this
ROCKING_WIDTH = 0.25  # mm, rms width of the rocking curve
PUMP_DEPTH = 0.6  # fraction of the Bragg peak lost right after time zero
PUMP_RISE_PS = 0.15  # width of the drop at time zero
PUMP_RECOVERY_PS = 2.5  # exponential recovery time
JITTER_PS = 0.3  # rms X-ray/laser arrival-time jitter
SCANS = ("delay", "step", "none")


@dataclass(frozen=True)
class Events:
    """Per-event datasets of a run, plus the truth the detector frames are made from.

    ``fields`` maps a dataset path (e.g. ``"ipm2/sum"``) to its (N, ...) array. ``intensity``
    is the detector signal scale (``ipm2/sum / IPM2_REF``, 0 on dropped X-ray shots) and
    ``peak_factor`` the Bragg-peak multiplier (pump-probe response times rocking curve).
    """

    fields: dict[str, np.ndarray]
    intensity: np.ndarray
    peak_factor: np.ndarray

    @property
    def n_events(self) -> int:
        """Return the number of events N."""
        return len(self.intensity)


def device_rng(seed: int, device: str) -> np.random.Generator:
    """Return a generator for one device, independent of the others and stable across runs."""
    return np.random.default_rng([seed, zlib.crc32(device.encode())])


def _pick(rng: np.random.Generator, n: int, fraction: float) -> np.ndarray:
    """Return a boolean (n,) array with about ``fraction`` of it True (at least one if n > 0)."""
    chosen = np.zeros(n, dtype=bool)
    if n:
        chosen[rng.choice(n, size=max(1, round(fraction * n)), replace=False)] = True
    return chosen


def timing(n: int) -> dict[str, np.ndarray]:
    """Return ``event_time`` (uint64 seconds<<32 | ns, 120 Hz) and ``fiducials`` (step 3)."""
    ns = np.arange(n, dtype=np.uint64) * np.uint64(10**9 // EVENT_RATE_HZ)
    seconds = np.uint64(START_SECONDS) + ns // np.uint64(10**9)
    event_time = (seconds << np.uint64(32)) | (ns % np.uint64(10**9))
    fiducials = START_FIDUCIAL + 3 * np.arange(n, dtype=np.int64)
    return {"event_time": event_time, "fiducials": fiducials}


def light_status(n: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Return ``lightStatus/xray`` (3 % dropped shots) and ``lightStatus/laser`` (4th shot off)."""
    xray = (~_pick(rng, n, 0.03)).astype(np.int32)
    laser = (np.arange(n) % 4 != 3).astype(np.int32)
    return {"lightStatus/xray": xray, "lightStatus/laser": laser}


def evr(n: int) -> dict[str, np.ndarray]:
    """Return ``evr/code_41`` (alternating blocks of 60 shots) and ``evr/code_94`` (never)."""
    code_41 = ((np.arange(n) // 60) % 2 == 0).astype(np.int32)
    return {"evr/code_41": code_41, "evr/code_94": np.zeros(n, dtype=np.int32)}


def intensity_monitors(xray: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Return ``ipm2/sum``, ``ipm3/sum`` (0.5 % NaN) and ``diodeU/channels`` (N, 4).

    Good shots are log-normal around ``IPM2_REF``; 3 % are weak (below 3e2) and dropped X-ray
    shots read a small positive pedestal residue.
    """
    n = len(xray)
    ipm2 = IPM2_REF * rng.lognormal(0.0, 0.5, n)
    weak = _pick(rng, n, 0.03)
    ipm2[weak] = rng.uniform(5.0, 300.0, int(weak.sum()))
    dropped = xray == 0
    ipm2[dropped] = np.abs(rng.normal(0.0, 2.0, int(dropped.sum()))) + 0.01
    ipm3 = np.abs(0.1 * ipm2 * (1 + 0.05 * rng.standard_normal(n))) + 0.01
    ipm3[_pick(rng, n, 0.005)] = np.nan
    response = np.array([0.8, 1.1, 0.95, 1.05]) * 1e-3
    diode = ipm2[:, None] * response * (1 + 0.05 * rng.standard_normal((n, 4)))
    return {"ipm2/sum": ipm2, "ipm3/sum": ipm3, "diodeU/channels": diode}


def step_index(n: int, n_steps: int) -> np.ndarray:
    """Return the scan step (0..n_steps-1) of each event: events split evenly and in order."""
    return (np.arange(n, dtype=np.int64) * n_steps) // n


def scan_fields(n: int, scan: str, n_steps: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Return the scan/encoder/EPICS datasets of a ``delay``, ``step`` or ``none`` scan.

    ``delay``: ``scan/lxt_ttc`` and ``epics/lxt_ttc`` (s) step through ``DELAY_RANGE_S``,
    ``enc/lasDelay`` (ps) is the nominal delay plus 5 fs encoder noise. ``step``: ``scan/gon_y``
    (mm) steps across the rocking curve, ``epics/lxt_ttc`` is fixed. ``none``: both constant.
    """
    step = step_index(n, n_steps)
    if scan == "delay":
        nominal = np.linspace(*DELAY_RANGE_S, n_steps)[step]
        return {
            "scan/lxt_ttc": nominal,
            "enc/lasDelay": nominal * 1e12 + rng.normal(0.0, 0.005, n),
            "epics/lxt_ttc": nominal.copy(),
        }
    positions = np.linspace(-GON_Y_HALF_RANGE, GON_Y_HALF_RANGE, n_steps) + GON_Y_CENTER
    gon_y = positions[step] if scan == "step" else np.full(n, GON_Y_CENTER)
    return {"scan/gon_y": gon_y, "epics/lxt_ttc": np.full(n, FIXED_DELAY_S)}


def timetool(
    jitter_ps: np.ndarray, valid: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Return the five ``tt/*`` datasets measuring ``jitter_ps``; all 0 where not ``valid``."""
    n = len(jitter_ps)
    tt_corr = jitter_ps + rng.normal(0.0, 0.02, n)
    fltpos_ps = tt_corr + rng.normal(0.0, 0.02, n)
    fields = {
        "tt/ttCorr": tt_corr,
        "tt/FLTPOS_PS": fltpos_ps,
        "tt/AMPL": np.clip(0.01 + 0.19 * rng.beta(2.0, 3.0, n), 0.01, 0.2),
        "tt/FLTPOS": 500.0 + fltpos_ps / 0.005,  # 5 fs per pixel
        "tt/FLTPOSFWHM": np.clip(rng.normal(120.0, 25.0, n), 50.0, 200.0),
    }
    return {path: np.where(valid, values, 0.0) for path, values in fields.items()}


def damage(n: int, rng: np.random.Generator) -> np.ndarray:
    """Return a ``damage/<det>`` int32 array: 1, with gaps of 1-5 missing frames (~1.5 %)."""
    delivered = np.ones(n, dtype=np.int32)
    if n < 20:
        return delivered
    for start in rng.choice(n, size=max(1, round(0.005 * n)), replace=False):
        delivered[start : start + rng.integers(1, 6)] = 0
    return delivered


def pump_response(delay_ps: np.ndarray) -> np.ndarray:
    """Return the Bragg-peak factor of a laser-on shot at ``delay_ps``.

    1 before time zero, ``1 - PUMP_DEPTH`` just after, recovering exponentially with
    ``PUMP_RECOVERY_PS``; the drop is a logistic step of width ``PUMP_RISE_PS``.
    """
    step = 1.0 / (1.0 + np.exp(-np.clip(delay_ps / PUMP_RISE_PS, -50.0, 50.0)))
    recovery = np.exp(-np.clip(delay_ps, 0.0, None) / PUMP_RECOVERY_PS)
    return 1.0 - PUMP_DEPTH * step * recovery


def rocking_curve(gon_y: np.ndarray) -> np.ndarray:
    """Return the Bragg-peak factor (0..1] at goniometer position ``gon_y`` (mm)."""
    return np.exp(-0.5 * ((gon_y - GON_Y_CENTER) / ROCKING_WIDTH) ** 2)


def _nominal_delay_ps(fields: dict[str, np.ndarray]) -> np.ndarray:
    """Return the nominal laser delay (ps) of each event from the scan fields."""
    if "scan/lxt_ttc" in fields:
        return fields["scan/lxt_ttc"] * 1e12
    return fields["epics/lxt_ttc"] * 1e12


def make_events(n: int, scan: str, n_steps: int, detector_names: list[str], seed: int) -> Events:
    """Return all per-event datasets of a run and the detector truth, deterministic in ``seed``."""
    fields = timing(n)
    fields |= light_status(n, device_rng(seed, "lightStatus"))
    fields |= evr(n)
    xray, laser = fields["lightStatus/xray"], fields["lightStatus/laser"]
    fields |= intensity_monitors(xray, device_rng(seed, "ipm"))
    fields |= scan_fields(n, scan, n_steps, device_rng(seed, "scan"))
    jitter = device_rng(seed, "jitter").normal(0.0, JITTER_PS, n)
    on = (xray == 1) & (laser == 1)
    fields |= timetool(jitter, on, device_rng(seed, "tt"))
    for name in detector_names:
        fields[f"damage/{name}"] = damage(n, device_rng(seed, f"damage/{name}"))
    intensity = np.where(xray == 1, fields["ipm2/sum"] / IPM2_REF, 0.0)
    pump = np.where(on, pump_response(_nominal_delay_ps(fields) + jitter), 1.0)
    rocking = rocking_curve(fields["scan/gon_y"]) if "scan/gon_y" in fields else 1.0
    return Events(fields=fields, intensity=intensity, peak_factor=pump * rocking)
