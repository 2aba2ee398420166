"""Image assembly against a plain per-pixel loop."""

from __future__ import annotations

import numpy as np
import pytest

from mpicube.detectors import Geometry
from mpicube.errors import CubeError

RAW = (2, 3, 4)


def _oracle(tile: np.ndarray, ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
    image = np.zeros((ix.max() + 1, iy.max() + 1))
    for idx in np.ndindex(tile.shape):
        image[ix[idx], iy[idx]] += tile[idx]
    return image


def _gapped() -> tuple[np.ndarray, np.ndarray]:
    """Two 3x4 modules stacked with a 2-row gap and a 1-column offset."""
    rows, cols = np.meshgrid(np.arange(3), np.arange(4), indexing="ij")
    ix = np.stack([rows, rows + 5])
    iy = np.stack([cols, cols + 1])
    return ix, iy


def test_gaps_are_zero_and_pixels_placed():
    ix, iy = _gapped()
    geometry = Geometry("jf", ix, iy, RAW)
    assert geometry.image_shape == (8, 5)
    tiles = np.random.default_rng(0).normal(size=(3, *RAW))
    images = geometry.assemble(tiles)
    assert images.shape == (3, 8, 5) and images.dtype == np.float64
    for image, tile in zip(images, tiles, strict=True):
        np.testing.assert_array_equal(image, _oracle(tile, ix, iy))
    assert (images[:, 3:5] == 0).all()


def test_pixels_on_the_same_image_pixel_are_summed():
    ix, iy = _gapped()
    ix[1, 0, 0], iy[1, 0, 0] = 0, 0  # lands on module 0's first pixel
    ix[1, 2, 3], iy[1, 2, 3] = 0, 0  # and a third pixel there too
    geometry = Geometry("jf", ix, iy, RAW)
    tiles = np.random.default_rng(1).normal(size=(2, *RAW))
    images = geometry.assemble(tiles.reshape(2, -1))  # (r, n_pixels) input
    for image, tile in zip(images, tiles, strict=True):
        np.testing.assert_allclose(image, _oracle(tile, ix, iy), rtol=1e-12)
    expected = tiles[0, 0, 0, 0] + tiles[0, 1, 0, 0] + tiles[0, 1, 2, 3]
    assert images[0, 0, 0] == pytest.approx(expected)


@pytest.mark.parametrize("duplicate", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_assemble_one_keeps_float_dtype(duplicate, dtype):
    ix, iy = _gapped()
    if duplicate:
        ix[1, 0, 0], iy[1, 0, 0] = 0, 0
    tile = np.random.default_rng(2).normal(size=RAW).astype(dtype)
    image = Geometry("jf", ix, iy, RAW).assemble_one(tile)
    assert image.dtype == dtype and image.shape == (8, 5)
    np.testing.assert_allclose(image, _oracle(tile.astype(np.float64), ix, iy), rtol=1e-6)


def test_assemble_one_of_integer_tile_is_float64():
    ix, iy = _gapped()
    image = Geometry("jf", ix, iy, RAW).assemble_one(np.ones(RAW, np.int32))
    assert image.dtype == np.float64 and image.sum() == 24


def test_shape_mismatch_and_negative_index():
    ix, iy = _gapped()
    with pytest.raises(CubeError, match="jf_b.*ix"):
        Geometry("jf_b", ix[0], iy, RAW)
    with pytest.raises(CubeError, match="jf_b.*iy"):
        Geometry("jf_b", ix, iy[:, :2], RAW)
    ix[0, 0, 0] = -1
    with pytest.raises(CubeError, match="jf_b.*negative"):
        Geometry("jf_b", ix, iy, RAW)


def test_wrong_tile_shape():
    ix, iy = _gapped()
    with pytest.raises(CubeError, match="jf_c"):
        Geometry("jf_c", ix, iy, RAW).assemble(np.zeros((2, 5)))
