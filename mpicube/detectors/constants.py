"""Per-detector calibration constants and geometry, as read from ``UserDataCfg/<det>``."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DetectorConstants:
    """Constants of one area detector.

    ``ped``, ``gain`` and ``rms`` have shape ``(G, *raw_shape)`` (G gain stages);
    ``mask``, ``ix``, ``iy``, ``x``, ``y`` have shape ``raw_shape``. Optional ones are None.
    """

    name: str
    detector_type: str
    raw_shape: tuple[int, ...]
    ped: np.ndarray
    gain: np.ndarray
    mask: np.ndarray | None = None
    rms: np.ndarray | None = None
    ix: np.ndarray | None = None
    iy: np.ndarray | None = None
    x: np.ndarray | None = None
    y: np.ndarray | None = None

    @property
    def n_pixels(self) -> int:
        """Return the number of pixels of one raw frame."""
        return int(np.prod(self.raw_shape))
