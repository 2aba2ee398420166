"""Area detectors: constants, calibration with per-bin accumulation, image assembly."""

from mpicube.detectors.calibration import Calibrator, make_calibrator
from mpicube.detectors.constants import DetectorConstants
from mpicube.detectors.geometry import Geometry

__all__ = ["Calibrator", "DetectorConstants", "Geometry", "make_calibrator"]
