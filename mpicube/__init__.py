"""mpicube: turn a run's smalldata file into binned HDF5 cubes, in parallel with MPI."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mpicube")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

__all__ = ["__version__", "open_cube", "open_cubes"]


def __getattr__(name: str) -> object:
    """Return ``open_cube``/``open_cubes`` from :mod:`mpicube.analysis`, imported on first use.

    The cube job itself never imports xarray: it is loaded only when a notebook asks.
    """
    if name in ("open_cube", "open_cubes"):
        from mpicube import analysis

        return getattr(analysis, name)
    raise AttributeError(f"module 'mpicube' has no attribute {name!r}")
