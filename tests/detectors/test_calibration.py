"""Calibration and accumulation against a plain, pixel-by-pixel numpy oracle."""

from __future__ import annotations

import numpy as np
import pytest

from mpicube.detectors import DetectorConstants, make_calibrator
from mpicube.errors import CubeError

SHAPE = (2, 7, 9)  # 126 pixels: not a multiple of the kernel's 4-word groups per frame


def _oracle_value(
    raw: int,
    ped: np.ndarray,
    gain: np.ndarray,
    mask: np.ndarray | None,
    det_type: str,
    thres: float | None,
    idx: tuple[int, ...],
) -> float:
    """One pixel by the contract's formula, in float64."""
    if det_type == "jungfrau":
        code, adc = raw >> 14, raw & 0x3FFF
        if code == 2:
            return 0.0
        stage = {0: 0, 1: 1, 3: 2}[code]
    else:
        stage, adc = 0, raw
    p, g = float(ped[(stage, *idx)]), float(gain[(stage, *idx)])
    if mask is not None and mask[idx] == 0:
        return 0.0
    if g == 0 or not np.isfinite(p) or not np.isfinite(g):
        return 0.0
    value = (adc - p) / g
    if thres is not None and value < thres:
        return 0.0
    return value


def _oracle_frame(frame: np.ndarray, const: DetectorConstants, thres: float | None) -> np.ndarray:
    out = np.zeros(frame.shape, np.float64)
    for idx in np.ndindex(frame.shape):
        out[idx] = _oracle_value(
            int(frame[idx]), const.ped, const.gain, const.mask, const.detector_type, thres, idx
        )
    return out


def _constants(
    rng: np.random.Generator, det_type: str = "jungfrau", shape: tuple[int, ...] = SHAPE
) -> DetectorConstants:
    """Random constants with masked, gain-0 and non-finite pixels."""
    n_stages = 3 if det_type == "jungfrau" else 1
    ped = rng.uniform(1000, 3000, (n_stages, *shape)).astype(np.float32)
    gain = rng.uniform(5, 50, (n_stages, *shape)).astype(np.float32)
    gain.reshape(n_stages, -1)[:, 3] = 0
    gain.reshape(n_stages, -1)[0, 5] = np.nan
    ped.reshape(n_stages, -1)[-1, 6] = np.inf
    mask = (rng.random(shape) > 0.1).astype(np.uint8)
    return DetectorConstants("det", det_type, shape, ped=ped, gain=gain, mask=mask)


def _jungfrau_frames(rng: np.random.Generator, n: int, shape: tuple[int, ...] = SHAPE):
    """Raw words with all four gain codes and ADC values around the pedestals."""
    adc = rng.integers(800, 3500, (n, *shape)).astype(np.uint16)
    code = rng.choice(np.array([0, 1, 2, 3], np.uint16), size=(n, *shape), p=[0.7, 0.1, 0.1, 0.1])
    return (adc | (code << 14)).astype(np.uint16)


def _oracle_acc(frames, rows, n_rows, const, thres) -> np.ndarray:
    acc = np.zeros((n_rows, const.n_pixels))
    for frame, frame_rows in zip(frames, rows, strict=True):
        value = _oracle_frame(frame, const, thres).ravel()
        for r in frame_rows:
            if r >= 0:
                acc[r] += value
    return acc


@pytest.mark.parametrize("thres", [None, 0.0, 12.5, -3.0])
def test_calibrate_matches_oracle(thres):
    rng = np.random.default_rng(1)
    const = _constants(rng)
    frame = _jungfrau_frames(rng, 1)[0]
    got = make_calibrator(const, thres, None).calibrate(frame)
    assert got.dtype == np.float32 and got.shape == SHAPE
    np.testing.assert_allclose(got, _oracle_frame(frame, const, thres), rtol=1e-6, atol=1e-6)


def test_oracle_sees_every_case():
    """The random data really holds every gain code, bad pixels and thresholded pixels."""
    rng = np.random.default_rng(1)
    frames = _jungfrau_frames(rng, 4)
    assert set(np.unique(frames >> 14)) == {0, 1, 2, 3}
    const = _constants(rng)
    plain = _oracle_frame(frames[0], const, None)
    assert (plain < 0).any() and (plain > 12.5).any() and (plain == 0).any()


@pytest.mark.parametrize("thres", [None, 0.0, 7.0])
def test_accumulate_matches_oracle(thres):
    rng = np.random.default_rng(2)
    const = _constants(rng)
    frames = _jungfrau_frames(rng, 6)
    rows = np.array(
        [
            [0, -1, -1],  # one row
            [-1, -1, -1],  # skipped
            [1, 2, -1],  # several rows
            [2, -1, 2],  # a repeated row gets the frame twice
            [0, -1, -1],  # same row as frame 0
            [-1, 3, 0],
        ],
        np.int32,
    )
    acc = np.zeros((4, const.n_pixels))
    make_calibrator(const, thres, 0).accumulate(frames, rows, acc)
    np.testing.assert_allclose(
        acc, _oracle_acc(frames, rows, 4, const, thres), rtol=1e-6, atol=1e-6
    )


def test_accumulate_adds_to_existing_sums():
    rng = np.random.default_rng(3)
    const = _constants(rng)
    frames = _jungfrau_frames(rng, 3)
    rows = np.array([[0], [1], [0]], np.int32)
    start = rng.normal(size=(2, const.n_pixels))
    acc = start.copy()
    make_calibrator(const, None, None).accumulate(frames, rows, acc)
    np.testing.assert_allclose(
        acc - start, _oracle_acc(frames, rows, 2, const, None), rtol=1e-6, atol=1e-6
    )


def test_frames_first_n_of_a_larger_buffer():
    rng = np.random.default_rng(4)
    const = _constants(rng)
    buffer = _jungfrau_frames(rng, 8)
    frames = buffer[:3]
    rows = np.array([[0], [1], [0]], np.int32)
    acc = np.zeros((2, const.n_pixels))
    make_calibrator(const, 1.0, None).accumulate(frames, rows, acc)
    np.testing.assert_allclose(acc, _oracle_acc(frames, rows, 2, const, 1.0), rtol=1e-6, atol=1e-6)


def test_tiles_larger_than_one_kernel_tile():
    """More pixels than one kernel tile, so tile boundaries are crossed."""
    rng = np.random.default_rng(5)
    shape = (3, 3001)
    const = _constants(rng, shape=shape)
    frames = _jungfrau_frames(rng, 2, shape)
    rows = np.array([[0, 1], [1, -1]], np.int32)
    acc = np.zeros((2, const.n_pixels))
    make_calibrator(const, 2.0, None).accumulate(frames, rows, acc)
    expected = np.zeros_like(acc)
    values = [_vector_oracle(f, const, 2.0) for f in frames]
    expected[0] = values[0]
    expected[1] = values[0] + values[1]
    np.testing.assert_allclose(acc, expected, rtol=1e-6, atol=1e-6)


def _vector_oracle(frame: np.ndarray, const: DetectorConstants, thres: float) -> np.ndarray:
    """Jungfrau formula vectorised over pixels (the pixel loop is too slow for 9k pixels)."""
    code, adc = frame.ravel() >> 14, (frame.ravel() & 0x3FFF).astype(np.float64)
    stage = np.choose(code, [0, 1, 0, 2])
    ped = const.ped.reshape(3, -1).astype(np.float64)
    gain = const.gain.reshape(3, -1).astype(np.float64)
    pix = np.arange(adc.size)
    p, g = ped[stage, pix], gain[stage, pix]
    with np.errstate(divide="ignore", invalid="ignore"):
        value = (adc - p) / g
    bad = (code == 2) | (const.mask.ravel() == 0) | (g == 0) | ~np.isfinite(p) | ~np.isfinite(g)
    value[bad] = 0
    value[value < thres] = 0
    return value


@pytest.mark.parametrize("thres", [None, 5.0])
def test_epix100(thres):
    rng = np.random.default_rng(6)
    shape = (5, 6)
    const = _constants(rng, "epix100", shape)
    frames = rng.integers(0, 65536, (3, *shape)).astype(np.uint16)  # top bits are ADC here
    rows = np.array([[0], [1], [0]], np.int32)
    acc = np.zeros((2, const.n_pixels))
    calibrator = make_calibrator(const, thres, 0)
    calibrator.accumulate(frames, rows, acc)
    np.testing.assert_allclose(
        acc, _oracle_acc(frames, rows, 2, const, thres), rtol=1e-6, atol=1e-6
    )
    np.testing.assert_allclose(
        calibrator.calibrate(frames[1]),
        _oracle_frame(frames[1], const, thres),
        rtol=1e-6,
        atol=1e-5,
    )


def test_epix100_single_stage_constants_may_drop_the_stage_axis():
    rng = np.random.default_rng(7)
    const = _constants(rng, "epix100", (4, 4))
    flat = DetectorConstants(
        "det", "epix100", (4, 4), ped=const.ped[0], gain=const.gain[0], mask=const.mask
    )
    frame = rng.integers(0, 4000, (4, 4)).astype(np.uint16)
    np.testing.assert_array_equal(
        make_calibrator(flat, None, 0).calibrate(frame),
        make_calibrator(const, None, 0).calibrate(frame),
    )


def test_no_mask_means_all_good_and_attributes():
    rng = np.random.default_rng(8)
    const = _constants(rng)
    unmasked = DetectorConstants("jf1", "jungfrau", SHAPE, ped=const.ped, gain=const.gain)
    calibrator = make_calibrator(unmasked, None, None)
    assert (calibrator.name, calibrator.raw_shape, calibrator.n_pixels) == ("jf1", SHAPE, 126)
    frame = _jungfrau_frames(rng, 1)[0]
    np.testing.assert_allclose(
        calibrator.calibrate(frame), _oracle_frame(frame, unmasked, None), rtol=1e-6, atol=1e-6
    )


def test_unknown_detector_type():
    const = DetectorConstants(
        "cspad_x", "cspad", (2, 2), ped=np.zeros((1, 2, 2)), gain=np.ones((1, 2, 2))
    )
    with pytest.raises(CubeError, match="cspad_x.*cspad"):
        make_calibrator(const, None, None)


@pytest.mark.parametrize("what", ["ped", "gain", "mask"])
def test_constant_shape_mismatch(what):
    good = {"ped": np.zeros((3, 2, 2)), "gain": np.ones((3, 2, 2)), "mask": np.ones((2, 2))}
    good[what] = np.ones((2, 2, 2)) if what != "mask" else np.ones((2, 3))
    const = DetectorConstants("jf_a", "jungfrau", (2, 2), **good)
    with pytest.raises(CubeError, match=f"jf_a.*{what}"):
        make_calibrator(const, None, None)


@pytest.mark.parametrize("common_mode", [1, 6, 80])
def test_unsupported_common_mode(common_mode):
    const = _constants(np.random.default_rng(9))
    with pytest.raises(
        CubeError, match=f"det: common_mode {common_mode} is not supported for jungfrau detectors"
    ):
        make_calibrator(const, None, common_mode)


def test_bad_accumulate_arguments():
    rng = np.random.default_rng(10)
    calibrator = make_calibrator(_constants(rng), None, None)
    frames = _jungfrau_frames(rng, 2)
    acc = np.zeros((2, calibrator.n_pixels))
    with pytest.raises(ValueError, match="row 2"):
        calibrator.accumulate(frames, np.array([[0], [2]]), acc)
    with pytest.raises(ValueError, match="float64"):
        calibrator.accumulate(frames, np.array([[0], [1]]), acc.astype(np.float32))
    with pytest.raises(ValueError, match="uint16"):
        calibrator.accumulate(frames.astype(np.int32), np.array([[0], [1]]), acc)
    with pytest.raises(ValueError, match="contiguous"):
        calibrator.accumulate(frames[:, :, ::-1], np.array([[0], [1]]), acc)
