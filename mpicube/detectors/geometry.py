"""Assemble raw-shaped detector tiles into images, on binned sums (not per event)."""

from __future__ import annotations

import numpy as np

from mpicube.errors import CubeError

MAX_IMAGE_GROWTH = 16  # an image this many times larger than the raw frame is a bad geometry


class Geometry:
    """Where each raw pixel lands in the assembled image.

    ``ix``, ``iy`` (raw_shape ints) are each pixel's row and column; the image is
    ``(max(ix) + 1, max(iy) + 1)``. Pixels landing on the same image pixel are summed,
    image pixels no raw pixel lands on (gaps) are 0.
    """

    def __init__(
        self, name: str, ix: np.ndarray, iy: np.ndarray, raw_shape: tuple[int, ...]
    ) -> None:
        self.name = name
        self.raw_shape = tuple(int(s) for s in raw_shape)
        rows = _index_array(name, "ix", ix, self.raw_shape)
        cols = _index_array(name, "iy", iy, self.raw_shape)
        height = int(rows.max()) + 1 if rows.size else 0
        width = int(cols.max()) + 1 if cols.size else 0
        if height * width > MAX_IMAGE_GROWTH * max(1, rows.size):
            raise CubeError(
                f"{name}: geometry out of range: ix/iy make a {height} x {width} image for "
                f"{rows.size} pixels (more than {MAX_IMAGE_GROWTH}x): check UserDataCfg/{name}"
            )
        self.image_shape = (height, width)
        self._linear = rows * width + cols
        self._unique = np.unique(self._linear).size == self._linear.size

    def assemble(self, tiles: np.ndarray) -> np.ndarray:
        """Return the (r, H, W) float64 images of ``tiles``, (r, *raw_shape) or (r, n_pixels)."""
        flat = self._flat(tiles).astype(np.float64, copy=False)
        images = np.zeros((len(flat), self.image_shape[0] * self.image_shape[1]), np.float64)
        for image, tile in zip(images, flat, strict=True):
            self._place(image, tile)
        return images.reshape(len(flat), *self.image_shape)

    def assemble_one(self, tile: np.ndarray) -> np.ndarray:
        """Return the (H, W) image of one raw_shape tile, in the tile's float dtype
        (float64 for a non-float tile)."""
        tile = np.asarray(tile)
        dtype = tile.dtype if np.issubdtype(tile.dtype, np.floating) else np.float64
        flat = self._flat(tile[np.newaxis])[0].astype(dtype, copy=False)
        image = np.zeros(self.image_shape[0] * self.image_shape[1], dtype)
        self._place(image, flat)
        return image.reshape(self.image_shape)

    def _place(self, image: np.ndarray, tile: np.ndarray) -> None:
        """Add the pixels of a flat tile into a flat, zeroed image; return None."""
        if self._unique:
            image[self._linear] = tile
        else:
            image += np.bincount(self._linear, weights=tile, minlength=image.size)

    def _flat(self, tiles: np.ndarray) -> np.ndarray:
        """Return ``tiles`` as (r, n_pixels), or raise CubeError naming the detector."""
        tiles = np.asarray(tiles)
        n_pixels = self._linear.size
        if tiles.shape[1:] not in (self.raw_shape, (n_pixels,)):
            raise CubeError(
                f"{self.name}: cannot assemble tiles of shape {tiles.shape}, "
                f"expected (r, *{self.raw_shape}) or (r, {n_pixels})"
            )
        return tiles.reshape(len(tiles), n_pixels)


def _index_array(
    name: str, what: str, values: np.ndarray, raw_shape: tuple[int, ...]
) -> np.ndarray:
    """Return ``values`` as a flat int64 index array, or raise CubeError naming the detector
    if its shape is not raw_shape or it holds negative or non-integer values."""
    values = np.asarray(values)
    if values.shape != raw_shape:
        raise CubeError(
            f"{name}: geometry {what} has shape {values.shape}, expected raw_shape {raw_shape}"
        )
    integral = np.issubdtype(values.dtype, np.integer) or (
        np.all(np.isfinite(values)) and np.all(values == np.round(values))
    )
    if not integral:
        raise CubeError(f"{name}: geometry {what} holds non-integer values")
    index = values.astype(np.int64).ravel()
    if index.size and index.min() < 0:
        raise CubeError(f"{name}: geometry {what} holds negative indices (min {index.min()})")
    return index
