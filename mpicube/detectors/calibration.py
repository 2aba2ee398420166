"""Calibrate raw area-detector frames and accumulate them into per-bin sums.

Per pixel (contract §1): Jungfrau ``value = (adc - ped[stage]) / gain[stage]`` with the
gain stage from the top 2 bits of the raw word (0 -> 0, 1 -> 1, 3 -> 2, 2 invalid -> 0)
and ``adc`` the low 14 bits; ePix10ka the same with ``adc`` the low 14 bits and the stage
bit 14 (0: the range the pixel starts in, H or M, or the fixed range; 1: switched to the low
range L; bit 15 is ignored), as psana's ``UtilsEpix10ka`` reads it (``M14 = 0x3fff``,
``B14 = 1 << 14``); ePix100 ``value = (raw - ped[0]) / gain[0]``. Masked pixels, pixels
with gain 0 or non-finite constants give 0; with a threshold, values below it give 0.

Without common mode and ``thresRms`` the fused numba kernel does everything tile by tile;
with either, frames are calibrated one by one in numpy (:mod:`.framewise`), then summed.

Precision: the folded coefficients ``scale = 1 / gain`` and ``offset = -ped / gain`` (0 for
bad pixels) are stored in float64 and the arithmetic is float64, so each value matches the
plain formula to ~1e-15 relative. float32 coefficients would lose up to ~1e-4 relative on
pixels near their pedestal (``adc * scale`` and ``offset`` nearly cancel) for at most
~15% more speed (measured), so they were not used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mpicube.detectors import commonmode
from mpicube.detectors.constants import DetectorConstants
from mpicube.detectors.framewise import FrameCalibrator
from mpicube.detectors.kernels import TILE, accumulate_block
from mpicube.errors import CubeError


@dataclass(frozen=True)
class _Encoding:
    """How a detector type stores its raw words."""

    n_stages: int
    adc_mask: int  # largest raw word that is an ADC value in gain stage 0
    stage_of_code: tuple[int, int, int, int]  # stage of each top-2-bit code, -1 invalid


_ENCODINGS = {
    "jungfrau": _Encoding(n_stages=3, adc_mask=0x3FFF, stage_of_code=(0, 1, -1, 2)),
    "epix10ka": _Encoding(n_stages=2, adc_mask=0x3FFF, stage_of_code=(0, 1, 0, 1)),
    "epix100": _Encoding(n_stages=1, adc_mask=0xFFFF, stage_of_code=(0, 0, 0, 0)),
}


class Calibrator:
    """Calibrates the raw frames of one detector, alone or straight into accumulator rows.

    Build it with :func:`make_calibrator`. ``scale`` and ``offset`` are (G, n_pixels)
    float64 arrays: ``value = adc * scale[stage] + offset[stage]``.
    """

    def __init__(
        self,
        name: str,
        raw_shape: tuple[int, ...],
        scale: np.ndarray,
        offset: np.ndarray,
        encoding: _Encoding,
        thres_adu: float | None,
        frame_path: FrameCalibrator | None = None,
    ) -> None:
        self.name = name
        self.raw_shape = tuple(int(s) for s in raw_shape)
        self.n_pixels = int(np.prod(self.raw_shape))
        self._scale = scale
        self._offset = offset
        self._adc_mask = encoding.adc_mask
        self._lut = np.array(encoding.stage_of_code, np.int64)
        self._thres = -np.inf if thres_adu is None else float(thres_adu)
        self._frame_path = frame_path

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

    def _run(self, frames: np.ndarray, rows: np.ndarray, acc: np.ndarray) -> None:
        """Call the numba kernel (or the frame-by-frame path) on checked arguments; return None."""
        flat = frames.reshape(len(frames), self.n_pixels)
        if self._frame_path is not None:
            self._frame_path.accumulate(flat, rows, acc)
            return
        accumulate_block(
            flat, rows, acc, self._scale, self._offset, self._adc_mask, self._thres, TILE, self._lut
        )

    def _check_frames(self, frames: np.ndarray) -> np.ndarray:
        """Return ``frames`` after checking it is a C-contiguous (n, *raw_shape) uint16 block."""
        if frames.dtype != np.uint16 or frames.shape[1:] != self.raw_shape:
            raise ValueError(
                f"{self.name}: frames must be (n, *{self.raw_shape}) uint16, "
                f"got {frames.shape} {frames.dtype}"
            )
        if not frames.flags.c_contiguous:
            raise ValueError(f"{self.name}: frames must be C-contiguous")
        return frames

    def _check_rows(self, rows: np.ndarray, n: int, acc: np.ndarray) -> None:
        """Raise ValueError unless rows is (n, C) and acc a C-contiguous (R, n_pixels)
        float64 array with every row index below R; return None."""
        if acc.dtype != np.float64 or acc.ndim != 2 or acc.shape[1] != self.n_pixels:
            raise ValueError(
                f"{self.name}: acc must be (R, {self.n_pixels}) float64, "
                f"got {acc.shape} {acc.dtype}"
            )
        if not acc.flags.c_contiguous:
            raise ValueError(f"{self.name}: acc must be C-contiguous")
        if rows.ndim != 2 or rows.shape[0] != n:
            raise ValueError(f"{self.name}: rows must be ({n}, C), got {rows.shape}")
        if rows.size and rows.max() >= acc.shape[0]:
            raise ValueError(f"{self.name}: row {rows.max()} is out of acc's {acc.shape[0]} rows")


def make_calibrator(
    constants: DetectorConstants,
    thres_adu: float | None,
    common_mode: int | None,
    thres_rms: float | None = None,
) -> Calibrator:
    """Return a :class:`Calibrator` for ``constants``, with the coefficients folded once.

    ``common_mode``: a number of :mod:`.commonmode` (None: the type's default);
    ``thres_rms``: values below ``thres_rms * rms[stage] / gain[stage]`` become 0.
    Raises CubeError for an unknown detector type, constants whose shape does not match
    raw_shape, a non-finite threshold, a common-mode number the type does not accept, or a
    common mode or ``thres_rms`` without ``rms`` constants.
    """
    name = constants.name
    encoding = _encoding(name, constants.detector_type)
    try:
        mode = commonmode.psana_mode(constants.detector_type, common_mode)
    except CubeError as exc:
        raise CubeError(f"{name}: {exc}") from None
    for what, value in (("thresADU", thres_adu), ("thresRms", thres_rms)):
        if value is not None and not np.isfinite(value):
            raise CubeError(f"{name}: {what} must be a finite number or None, got {value}")
    raw_shape = tuple(int(s) for s in constants.raw_shape)
    ped = _stage_constant(name, "ped", constants.ped, encoding.n_stages, raw_shape)
    gain = _stage_constant(name, "gain", constants.gain, encoding.n_stages, raw_shape)
    good = _good_mask(name, constants.mask, raw_shape)
    scale, offset = _fold(ped, gain, good)
    frame_path = None
    if mode or thres_rms is not None:
        if constants.rms is None:
            need = f"common_mode {common_mode}" if mode else "thresRms"
            raise CubeError(f"{name}: {need} needs the pedestal rms (UserDataCfg/{name}/rms)")
        rms = _stage_constant(name, "rms", constants.rms, encoding.n_stages, raw_shape)
        try:
            lay = commonmode.layout(constants.detector_type, raw_shape) if mode else None
        except CubeError as exc:
            raise CubeError(f"{name}: {exc}") from None
        frame_path = FrameCalibrator(
            raw_shape,
            ped,
            scale,
            rms,
            np.array(encoding.stage_of_code, np.int64),
            encoding.adc_mask,
            thres_adu,
            thres_rms,
            mode,
            lay,
        )
    return Calibrator(name, raw_shape, scale, offset, encoding, thres_adu, frame_path)


def _encoding(name: str, detector_type: str) -> _Encoding:
    """Return the raw-word encoding of ``detector_type``, or raise CubeError."""
    try:
        return _ENCODINGS[str(detector_type).lower()]
    except KeyError:
        known = ", ".join(sorted(_ENCODINGS))
        raise CubeError(
            f"{name}: detector_type {detector_type!r} is not supported (supported: {known})"
        ) from None


def _stage_constant(
    name: str, what: str, values: np.ndarray, n_stages: int, raw_shape: tuple[int, ...]
) -> np.ndarray:
    """Return a per-stage constant as (n_stages, n_pixels) float64, or raise CubeError.

    A single-stage detector may also give it as raw_shape.
    """
    values = np.asarray(values, dtype=np.float64)
    if n_stages == 1 and values.shape == raw_shape:
        values = values[np.newaxis]
    if values.shape != (n_stages, *raw_shape):
        raise CubeError(
            f"{name}: constant {what} has shape {values.shape}, "
            f"expected {(n_stages, *raw_shape)} for raw_shape {raw_shape}"
        )
    return values.reshape(n_stages, -1)


def _good_mask(name: str, mask: np.ndarray | None, raw_shape: tuple[int, ...]) -> np.ndarray:
    """Return the good-pixel mask (mask != 0; all good if None) as (n_pixels,) bool."""
    n_pixels = int(np.prod(raw_shape))
    if mask is None:
        return np.ones(n_pixels, bool)
    mask = np.asarray(mask)
    if mask.shape != raw_shape:
        raise CubeError(
            f"{name}: constant mask has shape {mask.shape}, expected raw_shape {raw_shape}"
        )
    return (mask != 0).ravel()


def _fold(ped: np.ndarray, gain: np.ndarray, good: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return C-contiguous float64 (scale, offset), both (G, n_pixels): 1/gain and -ped/gain
    where the pixel is good and its constants finite with gain != 0, else 0."""
    ok = good & np.isfinite(ped) & np.isfinite(gain) & (gain != 0)
    safe_gain = np.where(ok, gain, 1.0)
    scale = np.where(ok, 1.0 / safe_gain, 0.0)
    offset = np.where(ok, -np.where(ok, ped, 0.0) / safe_gain, 0.0)
    return np.ascontiguousarray(scale), np.ascontiguousarray(offset)
