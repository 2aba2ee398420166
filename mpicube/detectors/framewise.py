"""Frame-by-frame calibration in numpy, for what the fused kernel cannot do per pixel tile:
common-mode correction (needs whole groups of a frame) and thresholds in units of the
pedestal rms (a threshold per pixel and gain stage).

``value = (adc - ped[stage] - cm) / gain[stage]`` where ``cm`` is the common mode of the
pixel's group (stage-0 pixels only, see :mod:`~mpicube.detectors.commonmode`); bad pixels
and invalid gain codes give 0; values below ``thresADU``, or below ``thresRms * rms[stage] /
gain[stage]``, give 0.
"""

from __future__ import annotations

import numpy as np

from mpicube.detectors import commonmode


class FrameCalibrator:
    """Calibrates one frame at a time; the slow path of :class:`Calibrator`."""

    def __init__(
        self,
        raw_shape: tuple[int, ...],
        ped: np.ndarray,
        scale: np.ndarray,
        rms: np.ndarray | None,
        stage_of_code: np.ndarray,
        adc_mask: int,
        thres_adu: float | None,
        thres_rms: float | None,
        mode: int,
        layout: commonmode.Layout | None,
    ) -> None:
        self.module_shape = (-1, *raw_shape[-2:])
        self._ped = np.where(scale != 0, ped, 0.0)
        self._scale = scale
        self._rms = rms
        self._lut = stage_of_code
        self._adc_mask = adc_mask
        self._thres_adu = thres_adu
        self._rms_cut = None if thres_rms is None else thres_rms * rms * np.abs(scale)
        self._mode = mode
        self._layout = layout

    def values(self, frame: np.ndarray) -> np.ndarray:
        """Return the calibrated float64 values (n_pixels,) of one flat uint16 frame."""
        words = frame.astype(np.int64)
        if len(self._scale) == 1:
            stage = np.zeros(words.shape, np.int64)
            valid = np.ones(words.shape, bool)
        else:
            stage = self._lut[words >> 14]
            valid = stage >= 0
            stage = np.maximum(stage, 0)
        adc = words & self._adc_mask
        scale = np.take_along_axis(self._scale, stage[np.newaxis], 0)[0]
        ped = np.take_along_axis(self._ped, stage[np.newaxis], 0)[0]
        ok = valid & (scale != 0)
        adu = adc - ped
        if self._mode:
            usable = ok & (stage == 0)
            shape = self.module_shape
            commonmode.correct(
                adu.reshape(shape),
                usable.reshape(shape),
                self._rms[0].reshape(shape),
                self._mode,
                self._layout,
            )
        value = np.where(ok, adu * scale, 0.0)
        if self._thres_adu is not None:
            value[value < self._thres_adu] = 0.0
        if self._rms_cut is not None:
            cut = np.take_along_axis(self._rms_cut, stage[np.newaxis], 0)[0]
            value[~(value >= cut)] = 0.0
        return value

    def accumulate(self, frames: np.ndarray, rows: np.ndarray, acc: np.ndarray) -> None:
        """Add each frame of ``frames`` (n, n_pixels) to its rows of ``acc``; return None."""
        for frame, frame_rows in zip(frames, rows, strict=True):
            targets = frame_rows[frame_rows >= 0]
            if len(targets) == 0:
                continue
            value = self.values(frame)
            for r in targets:
                acc[r] += value
