"""``save_tiff``: one TIFF per bin of each detector's ``<det>_data``, next to a committed cube.

Files are named ``<cube stem>_<det>_<bin>.tif`` (bin zero-padded to at least 3 digits) and hold
the bin's sum as float32 (an image, or one page per module for raw tiles). They are written
under temporary names and renamed only once every TIFF of the cube is written; on a failure
the ones already written are deleted, so a cube never has half a set.
"""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import tifffile

from mpicube.errors import CubeError


def tiff_paths(cube: Path, detector: str, n_bins: int) -> list[Path]:
    """Return the TIFF path of every bin of ``detector`` next to ``cube``."""
    width = max(3, len(str(n_bins - 1)))
    return [cube.with_name(f"{cube.stem}_{detector}_{b:0{width}d}.tif") for b in range(n_bins)]


def write_tiffs(cube: Path, detectors: list[str]) -> list[Path]:
    """Write the TIFFs of every bin of ``detectors`` from the committed ``cube``; return them.

    Raises CubeError (after deleting what it wrote) if one cannot be written.
    """
    done: list[Path] = []
    temps: list[tuple[Path, Path]] = []
    try:
        with h5py.File(cube, "r") as h5:
            for name in detectors:
                data = h5[f"{name}_data"]
                for b, path in enumerate(tiff_paths(cube, name, len(data))):
                    temp = path.with_name(f".{path.name}.{os.getpid()}.partial")
                    temps.append((temp, path))
                    tifffile.imwrite(temp, np.asarray(data[b], dtype=np.float32))
        for temp, path in temps:
            os.replace(temp, path)
            done.append(path)
    except OSError as exc:
        for temp, _ in temps:
            temp.unlink(missing_ok=True)
        for path in done:
            path.unlink(missing_ok=True)
        raise CubeError(f"{cube}: cannot write its TIFF files: {exc}") from exc
    return done
