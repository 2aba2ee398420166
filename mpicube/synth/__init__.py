"""Synthetic smalldata runs for tests, the demo and the benchmarks.

``write_run`` writes one run's smalldata HDF5 file (contract §1) with scalar devices
(``devices``) and area detectors (``detectors``), deterministic in its seed.
"""

from mpicube.smalldata import run_file_name
from mpicube.synth.detectors import DETECTOR_MODELS, ModelInfo
from mpicube.synth.run import write_run

__all__ = ["DETECTOR_MODELS", "ModelInfo", "run_file_name", "write_run"]
