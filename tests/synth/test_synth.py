"""Tests of the synthetic run generator ``mpicube.synth``."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from mpicube.synth import DETECTOR_MODELS, run_file_name, write_run
from mpicube.synth.detectors import make_geometry, peak_box, peak_profile_kev
from mpicube.synth.devices import IPM2_REF, pump_response

N = 240
SMALL = {"jf": "jungfrau-small"}
SCALARS = {
    "event_time": np.uint64,
    "fiducials": np.int64,
    "lightStatus/xray": np.integer,
    "lightStatus/laser": np.integer,
    "evr/code_41": np.integer,
    "evr/code_94": np.integer,
    "ipm2/sum": np.float64,
    "ipm3/sum": np.float64,
    "tt/ttCorr": np.float64,
    "tt/FLTPOS_PS": np.float64,
    "tt/AMPL": np.float64,
    "tt/FLTPOS": np.float64,
    "tt/FLTPOSFWHM": np.float64,
}
DELAY_FIELDS = ("scan/lxt_ttc", "enc/lasDelay", "epics/lxt_ttc")
STAGE_OF_CODE = np.array([0, 1, -1, 2])  # gain code (top 2 bits) -> stage, -1 invalid


def decode_jungfrau(
    raw: np.ndarray, ped: np.ndarray, gain: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Return (calibrated keV, valid) of Jungfrau raw words, with plain numpy."""
    stage = STAGE_OF_CODE[raw >> 14]
    valid = stage >= 0
    s = np.where(valid, stage, 0)
    idx = np.indices(raw.shape)
    adc = (raw & 0x3FFF).astype(np.float64)
    calib = (adc - ped[(s, *idx)]) / gain[(s, *idx)]
    return np.where(valid, calib, 0.0), valid


def read_all(path: Path) -> dict[str, np.ndarray]:
    """Return every dataset of an HDF5 file, by path."""
    out: dict[str, np.ndarray] = {}

    def keep(name: str, item: h5py.HLObject) -> None:
        if isinstance(item, h5py.Dataset):
            out[name] = item[()]

    with h5py.File(path, "r") as h5:
        h5.visititems(keep)
    return out


@pytest.fixture(scope="module")
def delay_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A delay-scan run with a small Jungfrau and a small ePix100."""
    path = tmp_path_factory.mktemp("synth") / run_file_name("xpptest", 7)
    return write_run(
        path,
        n_events=N,
        detectors={"jf": "jungfrau-small", "epix": "epix100-small"},
        seed=3,
        n_steps=6,
    )


def test_run_file_name() -> None:
    assert run_file_name("xpplx9221", 42) == "xpplx9221_Run0042.h5"


def test_models() -> None:
    assert DETECTOR_MODELS["jungfrau1M"].raw_shape == (2, 512, 1024)
    assert DETECTOR_MODELS["jungfrau4M"].raw_shape == (8, 512, 1024)
    assert DETECTOR_MODELS["jungfrau-small"].raw_shape == (2, 16, 32)
    assert DETECTOR_MODELS["epix100"].raw_shape == (704, 768)
    assert DETECTOR_MODELS["epix100-small"].raw_shape == (16, 24)
    types = {name: m.detector_type for name, m in DETECTOR_MODELS.items()}
    assert types["jungfrau4M"] == "jungfrau" and types["epix100-small"] == "epix100"


def test_scalar_layout(delay_run: Path) -> None:
    with h5py.File(delay_run, "r") as h5:
        for field, kind in SCALARS.items():
            assert h5[field].shape == (N,), field
            assert np.issubdtype(h5[field].dtype, kind), field
        assert h5["diodeU/channels"].shape == (N, 4)
        assert h5["diodeU/channels"].dtype == np.float64
        for field in (*DELAY_FIELDS, "damage/jf", "damage/epix"):
            assert h5[field].shape == (N,), field
        assert "scan/gon_y" not in h5


def test_timing(delay_run: Path) -> None:
    with h5py.File(delay_run, "r") as h5:
        t = h5["event_time"][()]
        fid = h5["fiducials"][()]
    seconds = (t >> np.uint64(32)).astype(np.int64)
    ns = (t & np.uint64(0xFFFFFFFF)).astype(np.int64)
    assert ns.max() < 10**9 and seconds[0] > 1.5e9  # a date after 2017
    assert (np.diff(seconds * 10**9 + ns) == 10**9 // 120).all()
    assert (np.diff(fid) == 3).all()


def test_light_status_evr_monitors(delay_run: Path) -> None:
    f = read_all(delay_run)
    xray, laser = f["lightStatus/xray"], f["lightStatus/laser"]
    assert set(np.unique(xray)) == {0, 1} and 0.9 < xray.mean() < 1.0
    assert 0.7 < laser.mean() < 0.8
    assert 0.4 < f["evr/code_41"].mean() < 0.6
    assert not f["evr/code_94"].any()
    ipm2, ipm3 = f["ipm2/sum"], f["ipm3/sum"]
    assert (ipm2 > 0).all() and (ipm2[xray == 0] < 20).all()
    passes = (ipm2 > 3e2) & (ipm2 < 6e4)
    assert 0.85 < passes.mean() < 1.0
    assert (ipm2[xray == 1] < 3e2).any()
    assert np.isnan(ipm3).any() and np.isnan(ipm3).mean() < 0.02
    assert np.nanmin(ipm3) > 0


def test_delay_scan(delay_run: Path) -> None:
    f = read_all(delay_run)
    lxt = f["scan/lxt_ttc"]
    steps = np.unique(lxt)
    assert len(steps) == 6
    np.testing.assert_allclose(steps[[0, -1]], [-2e-12, 10e-12])
    assert (np.diff(lxt) >= 0).all()
    assert np.array_equal(f["epics/lxt_ttc"], lxt)
    np.testing.assert_allclose(f["enc/lasDelay"], lxt * 1e12, atol=0.05)
    assert np.unique(lxt, return_counts=True)[1].tolist() == [N // 6] * 6


def test_timetool(delay_run: Path) -> None:
    f = read_all(delay_run)
    on = (f["lightStatus/laser"] == 1) & (f["lightStatus/xray"] == 1)
    corr = f["tt/ttCorr"]
    assert 0.15 < corr[on].std() < 0.5
    np.testing.assert_allclose(f["tt/FLTPOS_PS"][on], corr[on], atol=0.15)
    assert ((f["tt/AMPL"][on] >= 0.01) & (f["tt/AMPL"][on] <= 0.2)).all()
    assert ((f["tt/FLTPOS"][on] > 200) & (f["tt/FLTPOS"][on] < 800)).all()
    assert ((f["tt/FLTPOSFWHM"][on] >= 50) & (f["tt/FLTPOSFWHM"][on] <= 200)).all()
    for field in ("tt/ttCorr", "tt/FLTPOS_PS", "tt/AMPL", "tt/FLTPOS", "tt/FLTPOSFWHM"):
        assert (f[field][~on] == 0).all(), field


def test_detector_layout(delay_run: Path) -> None:
    with h5py.File(delay_run, "r") as h5:
        for det, model, stages in (("jf", "jungfrau-small", 3), ("epix", "epix100-small", 1)):
            shape = DETECTOR_MODELS[model].raw_shape
            assert h5[f"{det}/raw"].shape == (N, *shape)
            assert h5[f"{det}/raw"].dtype == np.uint16
            cfg = h5[f"UserDataCfg/{det}"]
            assert cfg.attrs["detector_type"] == DETECTOR_MODELS[model].detector_type
            for key in ("ped", "gain", "rms"):
                assert cfg[key].shape == (stages, *shape) and cfg[key].dtype == np.float32
            assert cfg["mask"].shape == shape and cfg["mask"].dtype == np.uint8
            for key, dtype in (("ix", np.int32), ("iy", np.int32), ("x", np.float32)):
                assert cfg[key].shape == shape and cfg[key].dtype == dtype
            assert cfg["y"].dtype == np.float32
        gain = h5["UserDataCfg/jf/gain"][()]
    np.testing.assert_allclose(gain.mean(axis=(1, 2, 3)), [40, 1.5, 0.1], rtol=0.05)


@pytest.mark.parametrize("model", ["jungfrau-small", "epix100-small", "jungfrau1M", "jungfrau4M"])
def test_geometry(model: str) -> None:
    info = DETECTOR_MODELS[model]
    geo = make_geometry(info)
    ix, iy = geo["ix"], geo["iy"]
    assert ix.min() == 0 and iy.min() == 0
    height, width = int(ix.max()) + 1, int(iy.max()) + 1
    flat = ix.astype(np.int64).ravel() * width + iy.ravel()
    assert np.bincount(flat, minlength=height * width).max() == 1  # one raw pixel per image pixel
    assert height * width > ix.size  # gaps between tiles
    assert np.abs(geo["x"] - (ix - (height - 1) / 2) * info.pixel_um).max() < 1e-3
    np.testing.assert_allclose(geo["y"].mean(), 0.0, atol=info.pixel_um)


def test_mask(delay_run: Path) -> None:
    with h5py.File(delay_run, "r") as h5:
        mask = h5["UserDataCfg/jf/mask"][()]
    assert set(np.unique(mask)) <= {0, 1}
    assert 0.8 < mask.mean() <= 1.0


def test_jungfrau_gain_codes(delay_run: Path) -> None:
    with h5py.File(delay_run, "r") as h5:
        raw = h5["jf/raw"][()]
        delivered = h5["damage/jf"][()] == 1
    codes = raw[delivered] >> 14
    counts = np.bincount(codes.ravel(), minlength=4)
    assert counts[0] > counts[1] > 0 and counts[3] > 0
    assert counts[2] / codes.size < 1e-3


def test_epix_single_stage(delay_run: Path) -> None:
    f = read_all(delay_run)
    ped, gain = f["UserDataCfg/epix/ped"][0], f["UserDataCfg/epix/gain"][0]
    box = peak_box(DETECTOR_MODELS["epix100-small"].raw_shape)
    off = (f["lightStatus/laser"] == 0) & (f["lightStatus/xray"] == 1) & (f["damage/epix"] == 1)
    event = np.flatnonzero(off & (f["ipm2/sum"] > 1.5e4) & (f["ipm2/sum"] < 4e4))[0]
    calib = (f["epix/raw"][event].astype(np.float64) - ped) / gain  # raw word = ADC value
    expected = peak_profile_kev("epix100") * f["ipm2/sum"][event] / IPM2_REF
    np.testing.assert_allclose(calib[box], expected, atol=1.5)
    assert f["epix/raw"][event].max() > 2**14  # no gain bits: the peak uses the full 16 bits


def test_damaged_frames_are_zero(delay_run: Path) -> None:
    f = read_all(delay_run)
    for det in ("jf", "epix"):
        damaged = f[f"damage/{det}"] == 0
        assert 0 < damaged.sum() < 0.05 * N
        assert not f[f"{det}/raw"][damaged].any()
        assert f[f"{det}/raw"][~damaged].all(axis=tuple(range(1, f[f"{det}/raw"].ndim))).all()


def test_calibration_recovers_peak(delay_run: Path) -> None:
    f = read_all(delay_run)
    ped, gain, rms = f["UserDataCfg/jf/ped"], f["UserDataCfg/jf/gain"], f["UserDataCfg/jf/rms"]
    box = peak_box(DETECTOR_MODELS["jungfrau-small"].raw_shape)
    profile = peak_profile_kev("jungfrau")
    off = (f["lightStatus/laser"] == 0) & (f["lightStatus/xray"] == 1) & (f["damage/jf"] == 1)
    for event in np.flatnonzero(off)[:10]:
        calib, valid = decode_jungfrau(f["jf/raw"][event], ped, gain)
        expected = profile * f["ipm2/sum"][event] / IPM2_REF
        saturated = (f["jf/raw"][event][box] & 0x3FFF) == 0x3FFF
        ok = valid[box] & ~saturated
        tolerance = 6 * rms[0][box] / gain[2][box] + 1.0  # stage-2 noise bound, keV
        np.testing.assert_array_less(np.abs(calib[box] - expected)[ok], tolerance[ok])
        outside = np.ones(calib.shape, dtype=bool)
        outside[box] = False
        outside &= valid & (f["UserDataCfg/jf/mask"] == 1)
        photons = np.rint(calib[outside] / 9.5)
        assert np.abs(calib[outside] - 9.5 * photons).max() < 1.5  # noise + whole photons


def test_pump_probe_signal(delay_run: Path) -> None:
    f = read_all(delay_run)
    ped, gain = f["UserDataCfg/jf/ped"], f["UserDataCfg/jf/gain"]
    box = peak_box(DETECTOR_MODELS["jungfrau-small"].raw_shape)
    good = (f["lightStatus/xray"] == 1) & (f["damage/jf"] == 1)
    good &= (f["ipm2/sum"] > 3e2) & (f["ipm2/sum"] < 5e4)  # no saturated pixel
    delay_ps = f["scan/lxt_ttc"] * 1e12 + f["tt/ttCorr"]
    ratio = {}
    for laser in (0, 1):
        sel = np.flatnonzero(good & (f["lightStatus/laser"] == laser) & (delay_ps > 0.5))
        peak = [decode_jungfrau(f["jf/raw"][e], ped, gain)[0][box].sum() for e in sel]
        ratio[laser] = np.array(peak) / (f["ipm2/sum"][sel] / IPM2_REF)
        ratio[laser] = ratio[laser] / peak_profile_kev("jungfrau").sum()
    np.testing.assert_allclose(ratio[0], 1.0, rtol=0.05)
    on_delays = delay_ps[good & (f["lightStatus/laser"] == 1) & (delay_ps > 0.5)]
    np.testing.assert_allclose(ratio[1], pump_response(on_delays), atol=0.05)


def test_determinism(tmp_path: Path) -> None:
    a = read_all(write_run(tmp_path / "a.h5", n_events=40, detectors=SMALL, seed=1))
    b = read_all(write_run(tmp_path / "b.h5", n_events=40, detectors=SMALL, seed=1))
    c = read_all(write_run(tmp_path / "c.h5", n_events=40, detectors=SMALL, seed=2))
    assert a.keys() == b.keys() == c.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    for key in ("ipm2/sum", "jf/raw", "UserDataCfg/jf/ped", "tt/ttCorr"):
        assert not np.array_equal(a[key], c[key], equal_nan=True), key


def test_step_scan(tmp_path: Path) -> None:
    f = read_all(write_run(tmp_path / "s.h5", n_events=50, scan="step", detectors={}, n_steps=7))
    gon_y = f["scan/gon_y"]
    assert len(np.unique(gon_y)) == 7 and (np.diff(gon_y) >= 0).all()
    assert len(np.unique(f["epics/lxt_ttc"])) == 1
    assert "scan/lxt_ttc" not in f and "enc/lasDelay" not in f
    assert not any(key.startswith(("UserDataCfg", "damage")) for key in f)


def test_no_scan(tmp_path: Path) -> None:
    f = read_all(write_run(tmp_path / "n.h5", n_events=30, scan="none", detectors={}))
    assert len(np.unique(f["scan/gon_y"])) == 1
    assert [key for key in f if key.startswith("scan/")] == ["scan/gon_y"]


def test_default_detector_full_size(tmp_path: Path) -> None:
    path = write_run(tmp_path / "deep" / "d.h5", n_events=2, n_steps=1, raw_layout="contiguous")
    with h5py.File(path, "r") as h5:
        assert h5["jungfrau1M/raw"].shape == (2, 2, 512, 1024)
        assert h5["jungfrau1M/raw"].chunks is None
        assert h5["UserDataCfg/jungfrau1M"].attrs["detector_type"] == "jungfrau"
    assert not list(path.parent.glob("*.part"))


@pytest.mark.parametrize(("layout", "chunks"), [("chunked", (1, 2, 16, 32)), ("contiguous", None)])
def test_raw_layout(tmp_path: Path, layout: str, chunks: tuple[int, ...] | None) -> None:
    path = write_run(tmp_path / "r.h5", n_events=10, detectors=SMALL, raw_layout=layout, n_steps=2)
    with h5py.File(path, "r") as h5:
        assert h5["jf/raw"].chunks == chunks


@pytest.mark.parametrize(
    "kwargs",
    [
        {"scan": "rocking"},
        {"n_steps": 0},
        {"n_events": 5, "n_steps": 6},
        {"raw_layout": "virtual"},
        {"detectors": {"jf": "pilatus"}},
        {"detectors": {"tt": "jungfrau-small"}},
        {"seed": -1},
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        write_run(tmp_path / "x.h5", **{"n_events": 20, "detectors": {}, **kwargs})
