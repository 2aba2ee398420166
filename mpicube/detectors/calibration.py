"""Calibrate raw area-detector frames and accumulate them into per-bin sums.

Per pixel (contract §1): Jungfrau ``value = (adc - ped[stage]) / gain[stage]`` with the
gain stage from the top 2 bits of the raw word (0 -> 0, 1 -> 1, 3 -> 2, 2 invalid -> 0)
and ``adc`` the low 14 bits; ePix100 ``value = (raw - ped[0]) / gain[0]``. Masked pixels,
pixels with gain 0 or non-finite constants give 0; with a threshold, values below it give 0.

Precision: the folded coefficients ``scale = 1 / gain`` and ``offset = -ped / gain`` (0 for
bad pixels) are stored in float64 and the arithmetic is float64, so each value matches the
plain formula to ~1e-15 relative. float32 coefficients would lose up to ~1e-4 relative on
pixels near their pedestal (``adc * scale`` and ``offset`` nearly cancel) for at most
~15% more speed (measured), so they were not used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mpicube.detectors.constants import DetectorConstants
from mpicube.detectors.kernels import TILE, accumulate_block
from mpicube.errors import CubeError


@dataclass(frozen=True)
class _Encoding:
    """How a detector type stores its raw words."""

    n_stages: int
    adc_mask: int  # largest raw word that is an ADC value in gain stage 0


_ENCODINGS = {
    "jungfrau": _Encoding(n_stages=3, adc_mask=0x3FFF),
    "epix100": _Encoding(n_stages=1, adc_mask=0xFFFF),
}


class Calibrator:
    """Calibrates the raw frames of one detector, alone or straight into accumulator rows.

    Build it with :func:`make_calibrator`. ``scale`` and ``offset`` are (G, n_pixels)
    float64 arrays: ``value = adc * scale[stage] + offset[stage]``.
    """

    def __init__(self, name: str, raw_shape: tuple[int, ...], scale: np.ndarray,
                 offset: np.ndarray, adc_mask: int, thres_adu: float | None) -> None:
        self.name = name
        self.raw_shape = tuple(int(s) for s in raw_shape)
        self.n_pixels = int(np.prod(self.raw_shape))
        self._scale = scale
        self._offset = offset
        self._adc_mask = adc_mask
        self._thres = -np.inf if thres_adu is None else float(thres_adu)

    def calibrate(self, frame: np.ndarray) -> np.ndarray:
        """Return the calibrated, thresholded, masked float32 frame (raw_shape) of one raw frame."""
        frames = self._check_frames(np.asarray(frame)[np.newaxis])
        acc = np.zeros((1, self.n_pixels), np.float64)
        self._run(frames, np.zeros((1, 1), np.int32), acc)
        return acc[0].astype(np.float32).reshape(self.raw_shape)

    def accumulate(self, frames: np.ndarray, rows: np.ndarray, acc: np.ndarray) -> None:
        """Add each calibrated frame to its accumulator rows, in place; return None.

        frames: (n, *raw_shape) uint16, C-contiguous. rows: (n, C) ints, the rows of ``acc``
        frame e goes to (-1 = none; a row listed twice gets the frame twice).
        acc: (R, n_pixels) float64, C-contiguous. Each frame is calibrated once.
        """
        frames = self._check_frames(frames)
        rows = np.ascontiguousarray(rows, dtype=np.int32)
        self._check_rows(rows, len(frames), acc)
        self._run(frames, rows, acc)

    def warm_up(self) -> None:
        """Compile (or load from numba's cache) the kernel for this detector; return None.

        Call once before a timed loop so the first event does not pay the compilation.
        """
        frames = np.zeros((1, *self.raw_shape), np.uint16)
        self.calibrate(frames[0])
        self.accumulate(frames, np.array([[0, 0]], np.int32), np.zeros((1, self.n_pixels)))

    def _run(self, frames: np.ndarray, rows: np.ndarray, acc: np.ndarray) -> None:
        """Call the numba kernel on checked arguments; return None."""
        accumulate_block(frames.reshape(len(frames), self.n_pixels), rows, acc, self._scale,
                         self._offset, self._adc_mask, self._thres, TILE)

    def _check_frames(self, frames: np.ndarray) -> np.ndarray:
        """Return ``frames`` after checking it is a C-contiguous (n, *raw_shape) uint16 block."""
        if frames.dtype != np.uint16 or frames.shape[1:] != self.raw_shape:
            raise ValueError(f"{self.name}: frames must be (n, *{self.raw_shape}) uint16, "
                             f"got {frames.shape} {frames.dtype}")
        if not frames.flags.c_contiguous:
            raise ValueError(f"{self.name}: frames must be C-contiguous")
        return frames

    def _check_rows(self, rows: np.ndarray, n: int, acc: np.ndarray) -> None:
        """Raise ValueError unless rows is (n, C) and acc a C-contiguous (R, n_pixels)
        float64 array with every row index below R; return None."""
        if acc.dtype != np.float64 or acc.ndim != 2 or acc.shape[1] != self.n_pixels:
            raise ValueError(f"{self.name}: acc must be (R, {self.n_pixels}) float64, "
                             f"got {acc.shape} {acc.dtype}")
        if not acc.flags.c_contiguous:
            raise ValueError(f"{self.name}: acc must be C-contiguous")
        if rows.ndim != 2 or rows.shape[0] != n:
            raise ValueError(f"{self.name}: rows must be ({n}, C), got {rows.shape}")
        if rows.size and rows.max() >= acc.shape[0]:
            raise ValueError(f"{self.name}: row {rows.max()} is out of acc's {acc.shape[0]} rows")


def make_calibrator(constants: DetectorConstants, thres_adu: float | None,
                    common_mode: int | None) -> Calibrator:
    """Return a :class:`Calibrator` for ``constants``, with the coefficients folded once.

    Raises CubeError for an unknown detector type, constants whose shape does not match
    raw_shape, a non-finite threshold, or a common-mode correction other than None/0.
    """
    name = constants.name
    encoding = _encoding(name, constants.detector_type)
    if common_mode not in (None, 0):
        raise CubeError(f"{name}: common_mode {common_mode} is not implemented yet "
                        "(use 0 or None for no common-mode correction)")
    if thres_adu is not None and not np.isfinite(thres_adu):
        raise CubeError(f"{name}: thresADU must be a finite number or None, got {thres_adu}")
    raw_shape = tuple(int(s) for s in constants.raw_shape)
    ped = _stage_constant(name, "ped", constants.ped, encoding.n_stages, raw_shape)
    gain = _stage_constant(name, "gain", constants.gain, encoding.n_stages, raw_shape)
    good = _good_mask(name, constants.mask, raw_shape)
    scale, offset = _fold(ped, gain, good)
    return Calibrator(name, raw_shape, scale, offset, encoding.adc_mask, thres_adu)


def _encoding(name: str, detector_type: str) -> _Encoding:
    """Return the raw-word encoding of ``detector_type``, or raise CubeError."""
    try:
        return _ENCODINGS[str(detector_type).lower()]
    except KeyError:
        known = ", ".join(sorted(_ENCODINGS))
        raise CubeError(f"{name}: detector_type {detector_type!r} is not supported "
                        f"(supported: {known})") from None


def _stage_constant(name: str, what: str, values: np.ndarray, n_stages: int,
                    raw_shape: tuple[int, ...]) -> np.ndarray:
    """Return a per-stage constant as (n_stages, n_pixels) float64, or raise CubeError.

    A single-stage detector may also give it as raw_shape.
    """
    values = np.asarray(values, dtype=np.float64)
    if n_stages == 1 and values.shape == raw_shape:
        values = values[np.newaxis]
    if values.shape != (n_stages, *raw_shape):
        raise CubeError(f"{name}: constant {what} has shape {values.shape}, "
                        f"expected {(n_stages, *raw_shape)} for raw_shape {raw_shape}")
    return values.reshape(n_stages, -1)


def _good_mask(name: str, mask: np.ndarray | None, raw_shape: tuple[int, ...]) -> np.ndarray:
    """Return the good-pixel mask (mask != 0; all good if None) as (n_pixels,) bool."""
    n_pixels = int(np.prod(raw_shape))
    if mask is None:
        return np.ones(n_pixels, bool)
    mask = np.asarray(mask)
    if mask.shape != raw_shape:
        raise CubeError(f"{name}: constant mask has shape {mask.shape}, "
                        f"expected raw_shape {raw_shape}")
    return (mask != 0).ravel()


def _fold(ped: np.ndarray, gain: np.ndarray, good: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return C-contiguous float64 (scale, offset), both (G, n_pixels): 1/gain and -ped/gain
    where the pixel is good and its constants finite with gain != 0, else 0."""
    ok = good & np.isfinite(ped) & np.isfinite(gain) & (gain != 0)
    safe_gain = np.where(ok, gain, 1.0)
    scale = np.where(ok, 1.0 / safe_gain, 0.0)
    offset = np.where(ok, -np.where(ok, ped, 0.0) / safe_gain, 0.0)
    return np.ascontiguousarray(scale), np.ascontiguousarray(offset)
