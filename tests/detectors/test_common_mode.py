"""Common mode and thresRms for every detector type against the loop oracle, and removal of
a known injected offset."""

from __future__ import annotations

import numpy as np
import pytest

from mpicube.detectors import DetectorConstants, make_calibrator
from mpicube.errors import CubeError
from tests import cm_oracle

SHAPES = {"jungfrau": (1, 8, 64), "epix10ka": (2, 8, 32), "epix100": (8, 32)}
STAGES = {"jungfrau": 3, "epix10ka": 2, "epix100": 1}
CASES = [(kind, number) for kind, table in cm_oracle.NUMBERS.items() for number in table]


def _constants(kind: str, rng: np.random.Generator) -> DetectorConstants:
    shape, g = SHAPES[kind], STAGES[kind]
    ped = np.rint(rng.uniform(1000, 3000, (g, *shape))).astype(np.float32)
    gain = rng.uniform(5, 50, (g, *shape)).astype(np.float32)
    rms = rng.uniform(2, 4, (g, *shape)).astype(np.float32)
    mask = (rng.random(shape) > 0.05).astype(np.uint8)
    gain.reshape(g, -1)[:, 5] = 0
    return DetectorConstants("det", kind, shape, ped=ped, gain=gain, rms=rms, mask=mask)


def _frames(
    const: DetectorConstants, rng: np.random.Generator, n: int, offset: np.ndarray
) -> np.ndarray:
    """Stage-0 frames: pedestal + offset + noise, a few photons and switched pixels."""
    kind, shape = const.detector_type, const.raw_shape
    adc = const.ped[0] + offset + rng.normal(0, 3, (n, *shape))
    photons = rng.random((n, *shape)) < 0.1
    adc = adc + photons * 10 * const.gain[0]
    words = np.clip(np.rint(adc), 0, 0x3FFF).astype(np.uint16)
    if kind != "epix100":
        switched = rng.random((n, *shape)) < 0.03
        codes = np.uint16(3 if kind == "jungfrau" else 1) << np.uint16(14)
        words[switched] = (words[switched] & 0x3FFF) | codes
    return words


def _offset(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """A common-mode pattern: per (module, half, bank) plus per row plus per column."""
    rows, cols = shape[-2:]
    per_row = rng.normal(0, 8, (rows, 1))
    per_col = rng.normal(0, 8, (1, cols))
    return np.broadcast_to(per_row + per_col + 20.0, shape)


@pytest.mark.parametrize(("kind", "number"), CASES)
def test_common_mode_matches_oracle(kind, number):
    rng = np.random.default_rng(abs(hash((kind, number))) % 2**32)
    const = _constants(kind, rng)
    frames = _frames(const, rng, 2, _offset(const.raw_shape, rng))
    calibrator = make_calibrator(const, 0.5, number, 1.0)
    acc = np.zeros((1, const.n_pixels))
    calibrator.accumulate(frames, np.zeros((2, 1), np.int32), acc)
    want = sum(
        cm_oracle.calibrate(f, const.ped, const.gain, const.rms, const.mask, kind, number, 0.5, 1.0)
        for f in frames
    )
    np.testing.assert_allclose(acc[0], want.ravel(), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kind", sorted(SHAPES))
@pytest.mark.parametrize(("number", "pattern"), [(74, "bank"), (71, "row"), (72, "column")])
def test_injected_offset_is_removed(kind, number, pattern):
    """Noise-free frames with a known offset per group and a few photons: after the
    correction every unswitched photon-free pixel is 0 and photons keep their energy."""
    rng = np.random.default_rng(11)
    const = _constants(kind, rng)
    shape = const.raw_shape
    rows, cols = shape[-2:]
    width = cols // cm_oracle.BANKS_PER_HALF[kind]
    r = np.arange(rows)[:, None]
    c = np.arange(cols)[None, :]
    group = {
        "bank": (r // (rows // 2)) * 100 + c // width,
        "row": r * 100 + c // width,
        "column": (r // (rows // 2)) * 1000 + c,
    }[pattern]
    offset = np.broadcast_to(((group * 7919) % 23 + 10).astype(np.float64), shape)
    photons = np.zeros(shape, bool)
    photons.reshape(-1)[::17] = True
    frame = np.rint(const.ped[0] + offset + photons * 9 * const.gain[0]).astype(np.uint16)
    got = make_calibrator(const, None, number).calibrate(frame).astype(np.float64)
    good = (const.mask != 0) & (const.gain[0] != 0)
    rounding = 0.5 / const.gain[0][good & photons]  # the photon signal was rounded to ADU
    assert np.all(np.abs(got[good & ~photons]) < 1e-4)
    np.testing.assert_allclose(got[good & photons], 9.0, atol=float(rounding.max()) + 1e-4)
    without = make_calibrator(const, None, 0).calibrate(frame)
    assert np.abs(without[good & ~photons]).min() > 0.1  # the offset was there


def test_defaults_per_type():
    rng = np.random.default_rng(3)
    for kind, default in (("jungfrau", 0), ("epix10ka", 80), ("epix100", 76)):
        const = _constants(kind, rng)
        frame = _frames(const, rng, 1, _offset(const.raw_shape, rng))[0]
        np.testing.assert_array_equal(
            make_calibrator(const, None, None).calibrate(frame),
            make_calibrator(const, None, default).calibrate(frame),
        )


def test_fast_path_and_frame_path_agree_without_common_mode():
    rng = np.random.default_rng(4)
    for kind in SHAPES:
        const = _constants(kind, rng)
        frames = _frames(const, rng, 3, _offset(const.raw_shape, rng))
        fast = make_calibrator(const, 1.0, 0)
        slow = make_calibrator(const, 1.0, 0, -1e9)  # thresRms forces the frame path
        for frame in frames:
            np.testing.assert_allclose(
                fast.calibrate(frame), slow.calibrate(frame), rtol=1e-6, atol=1e-5
            )


@pytest.mark.parametrize(
    ("kind", "number", "message"),
    [
        ("jungfrau", 85, "common_mode 85 is not supported for jungfrau"),
        ("epix10ka", 7, "common_mode 7 is not supported for epix10ka"),
        ("epix100", 6, "common_mode 6 is not supported for epix100"),
    ],
)
def test_numbers_of_another_type_are_refused(kind, number, message):
    with pytest.raises(CubeError, match=message):
        make_calibrator(_constants(kind, np.random.default_rng(5)), None, number)


def test_common_mode_and_thres_rms_need_rms():
    const = _constants("jungfrau", np.random.default_rng(6))
    bare = DetectorConstants("det", "jungfrau", const.raw_shape, ped=const.ped, gain=const.gain)
    with pytest.raises(CubeError, match="common_mode 71 needs the pedestal rms"):
        make_calibrator(bare, None, 71)
    with pytest.raises(CubeError, match="thresRms needs the pedestal rms"):
        make_calibrator(bare, None, 0, 3.0)
