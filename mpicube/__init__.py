"""mpicube: turn a run's smalldata file into binned HDF5 cubes, in parallel with MPI."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mpicube")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
