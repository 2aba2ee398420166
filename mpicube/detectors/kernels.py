"""Numba kernels: calibrate raw frames and add them to per-bin accumulator rows.

One core per MPI rank: the kernels are compiled with ``nogil=True`` and no ``parallel``.
The work is done tile by tile over pixels (all frames of a block inside one tile) so
that the coefficients of the tile and the accumulator rows it touches stay in cache.

Coefficients are folded per pixel and gain stage as ``value = adc * scale + offset``
(``scale = mask / gain``, ``offset = -ped * mask / gain``, 0 for bad pixels), in float64.
Gain stage 0 is computed for every pixel in one vectorised pass; the few pixels whose raw
word has a gain bit set (``word > adc_mask``: the top 2 bits of a Jungfrau word, bit 14 of
an ePix10ka word) get 0 there and are patched in a second, sparse pass that finds them four
words at a time and maps the top 2 bits to a gain stage through a 4-entry table
(``stage_of_code``; -1 marks an invalid code, whose pixel stays 0). The sparse pass reads
the stage >= 1 coefficients of the few switched pixels only: pre-reading them for the whole
tile cost ~20% of the kernel's time (measured, benchmarks/README.md).
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: Pixels per tile (a multiple of 4, so the sparse pass can read 4 raw words at once).
TILE = 8192

#: The top two bits of four raw words read as one uint64.
_GAIN_BITS_X4 = np.uint64(0xC000C000C000C000)


@njit(cache=True, nogil=True)
def _stage0(out, fr, s0, o0, adc_mask, thres, add):
    """Write (or add, if ``add``) the stage-0 values of one frame tile into ``out``.

    Pixels in another gain stage, or below ``thres``, give 0. Returns nothing.
    """
    for p in range(fr.shape[0]):
        w = fr[p]
        v = w * s0[p] + o0[p]
        v = 0.0 if (w > adc_mask or v < thres) else v
        if add:
            out[p] += v
        else:
            out[p] = v


@njit(cache=True, nogil=True)
def _switched(out, fr, scale, offset, start, thres, stage_of_code):
    """Add the values of the pixels whose top 2 bits are set to ``out``.

    The code ``word >> 14`` gives the stage ``stage_of_code[code]``; -1 (invalid) stays 0.
    Returns nothing.
    """
    m4 = fr.shape[0] // 4
    words = fr[: 4 * m4].view(np.uint64)
    for i in range(m4):
        if words[i] & _GAIN_BITS_X4:
            for p in range(4 * i, 4 * i + 4):
                _patch(out, fr, scale, offset, start, thres, stage_of_code, p)
    for p in range(4 * m4, fr.shape[0]):
        _patch(out, fr, scale, offset, start, thres, stage_of_code, p)


@njit(cache=True, nogil=True, inline="always")
def _patch(out, fr, scale, offset, start, thres, stage_of_code, p):
    """Add the value of pixel ``p`` if its gain code is set and valid. Returns nothing."""
    w = fr[p]
    code = w >> 14
    stage = stage_of_code[code]
    if code == 0 or stage < 0:
        return
    v = (w & 0x3FFF) * scale[stage, start + p] + offset[stage, start + p]
    if v >= thres:
        out[p] += v


@njit(cache=True, nogil=True)
def _calibrate_tile(out, fr, scale, offset, start, adc_mask, thres, add, stage_of_code):
    """Write (or add) the calibrated values of one frame tile into ``out``. Returns nothing."""
    stop = start + fr.shape[0]
    _stage0(out, fr, scale[0, start:stop], offset[0, start:stop], adc_mask, thres, add)
    if scale.shape[0] > 1:
        _switched(out, fr, scale, offset, start, thres, stage_of_code)


@njit(cache=True, nogil=True)
def accumulate_block(frames, rows, acc, scale, offset, adc_mask, thres, tile, stage_of_code):
    """``acc[r] += calibrated(frames[e])`` for every ``r >= 0`` in ``rows[e]``.

    frames: (n, P) uint16; rows: (n, C) int32; acc: (R, P) float64;
    scale, offset: (G, P) float64 (G = 1, 2 for ePix10ka, 3 for Jungfrau);
    adc_mask: largest stage-0 raw word; thres: values below it become 0 (-inf: none);
    stage_of_code: (4,) int64, the stage of each top-2-bit code (-1: invalid; unused if G = 1).
    A frame going to several rows is calibrated once per tile. Returns nothing.
    """
    n, n_pix = frames.shape
    n_slots = rows.shape[1]
    buf_all = np.empty(tile, np.float64)
    for start in range(0, n_pix, tile):
        stop = min(start + tile, n_pix)
        buf = buf_all[: stop - start]
        for e in range(n):
            n_rows = 0
            last = -1
            for c in range(n_slots):
                if rows[e, c] >= 0:
                    n_rows += 1
                    last = rows[e, c]
            if n_rows == 0:
                continue
            fr = frames[e, start:stop]
            if n_rows == 1:
                _calibrate_tile(
                    acc[last, start:stop],
                    fr,
                    scale,
                    offset,
                    start,
                    adc_mask,
                    thres,
                    True,
                    stage_of_code,
                )
                continue
            _calibrate_tile(buf, fr, scale, offset, start, adc_mask, thres, False, stage_of_code)
            for c in range(n_slots):
                r = rows[e, c]
                if r >= 0:
                    a = acc[r, start:stop]
                    for p in range(buf.shape[0]):
                        a[p] += buf[p]
