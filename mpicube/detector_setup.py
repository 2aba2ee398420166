"""A requested area detector made ready to cube: every check the job makes before it
reads a frame (constants, calibration settings, image geometry, det_proc arguments).

Shared by the job and by ``mpicube check``, so that check refuses exactly what the job
would refuse.
"""

from __future__ import annotations

from dataclasses import dataclass

from mpicube import postproc
from mpicube.config import DetectorRequest
from mpicube.detectors import Calibrator, DetectorConstants, Geometry, make_calibrator
from mpicube.errors import CubeError
from mpicube.smalldata import SmallData


@dataclass(frozen=True)
class PreparedDetector:
    """A detector's constants, calibrator, image geometry (if ``image``) and det_proc."""

    request: DetectorRequest
    constants: DetectorConstants
    calibrator: Calibrator
    geometry: Geometry | None
    procs: tuple[postproc.PostProc, ...]

    @property
    def data_shape(self) -> tuple[int, ...]:
        """Return the shape of one bin of ``<det>_data``: the image, or the raw tiles."""
        return self.geometry.image_shape if self.geometry else tuple(self.constants.raw_shape)


def prepare_detector(sd: SmallData, request: DetectorRequest, config: str) -> PreparedDetector:
    """Return ``request``'s detector ready to cube; CubeError (naming the detector, the
    smalldata file or ``config``) for anything the job could not cube."""
    constants = sd.detector_constants(request.source)
    calibrator = make_calibrator(
        constants, request.thres_adu, request.common_mode, request.thres_rms
    )
    geometry = None
    if request.image:
        if constants.ix is None or constants.iy is None:
            raise CubeError(
                f"{sd.path}: detector {request.source!r}: image needs UserDataCfg/"
                f"{request.source}/ix and iy"
            )
        geometry = Geometry(request.source, constants.ix, constants.iy, constants.raw_shape)
    shape = geometry.image_shape if geometry else tuple(constants.raw_shape)
    procs = tuple(postproc.bind(request.det_proc, constants, shape, config))
    return PreparedDetector(request, constants, calibrator, geometry, procs)
