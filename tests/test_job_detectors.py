"""End to end under mpiexec: three detector types in one pass, common mode, thresRms, image,
det_proc and save_tiff, against the numpy oracles."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import tifffile

from mpicube.synth import write_run
from tests import cm_oracle, oracle
from tests.test_job import EXP, RANKS, compare, run_cube

EDGES = [0.0, 1000.0, 5000.0, 20000.0, 60000.0]
CONFIG = """
binBoundaries = lambda run: [0.0, 1000.0, 5000.0, 20000.0, 60000.0]
binName = lambda run: 'ipm2/sum'
ep = {'source': 'ep', 'image': True, 'thresADU': 0.5, 'common_mode': 85, 'full': 1,
      'det_proc': {'azav': {'distance': 20.0, 'nbins': 30},
                   'roi1': {'func': 'roi_sum', 'roi': [[2, 20], [3, 30]]},
                   'proj': {'func': 'projection', 'axis': 0}}}
varList = ['ipm2/sum', ep,
           {'source': 'jf', 'thresRms': 3.0},
           {'source': 'e1', 'image': True, 'common_mode': 0}]
save_tiff = True
"""
DETECTORS = {
    "ep": ("epix10ka-small", 85, 0.5, None, True),
    "jf": ("jungfrau-small", None, None, 3.0, False),
    "e1": ("epix100-small", 0, None, None, True),
}


@pytest.fixture(scope="module")
def multi_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multi")
    indir = tmp / "smalldata"
    path = write_run(
        indir / f"{EXP}_Run0001.h5",
        n_events=60,
        scan="step",
        detectors={k: v[0] for k, v in DETECTORS.items()},
        seed=9,
    )
    run = oracle.read_run(path)
    config = tmp / "cube_config_mec.py"
    config.write_text(CONFIG)
    keep = np.ones(len(run["event_time"]), bool)
    want = {}
    for det, (_, number, thres_adu, thres_rms, image) in DETECTORS.items():
        cfg = {k: run[f"UserDataCfg/{det}/{k}"] for k in ("ped", "gain", "rms", "mask")}
        kind = run[f"UserDataCfg/{det}/type"]
        frames = np.array(
            [
                cm_oracle.calibrate(
                    f,
                    cfg["ped"],
                    cfg["gain"],
                    cfg["rms"],
                    cfg["mask"],
                    kind,
                    number,
                    thres_adu,
                    thres_rms,
                )
                for f in run[f"{det}/raw"]
            ]
        )
        cube = oracle.expected_cube(
            run, keep, run["ipm2/sum"], np.array(EDGES), ["ipm2/sum"], det, frames, image=image
        )
        if det == "ep":
            want["ep_raw"] = oracle.expected_cube(
                run, keep, run["ipm2/sum"], np.array(EDGES), [], det, frames
            )["ep_data"]
        want.update(cube)
    return indir, config, run, want


def _azav(raw: np.ndarray, run: dict) -> np.ndarray:
    """Mean per radial bin (2θ, 30 bins over the good pixels) of one raw-shaped sum."""
    x, y = run["UserDataCfg/ep/x"].ravel(), run["UserDataCfg/ep/y"].ravel()
    good = run["UserDataCfg/ep/mask"].ravel() != 0
    tth = np.degrees(np.arctan(np.hypot(x, y) / 20000.0))
    edges = np.linspace(tth[good].min(), tth[good].max(), 31)
    out = np.full(30, np.nan)
    for i in range(30):
        upper = tth <= edges[i + 1] if i == 29 else tth < edges[i + 1]
        sel = good & (tth >= edges[i]) & upper
        if sel.any():
            out[i] = raw.ravel()[sel].mean()
    return out


@pytest.mark.parametrize("ranks", RANKS)
def test_three_detectors_common_mode_image_det_proc_and_tiffs(multi_run, tmp_path, ranks):
    indir, config, run, want = multi_run
    result = run_cube(indir, tmp_path, config, ranks)
    assert result.returncode == 0, result.stderr
    name = f"Cube_{EXP}_Run0001_ipm2__sum"
    compare(tmp_path / f"{name}.h5", {k: v for k, v in want.items() if k != "ep_raw"})
    with h5py.File(tmp_path / f"{name}.h5") as cube:
        for det in ("ep", "e1"):
            assert cube[f"{det}_data"].shape[1:] == cube[f"{det}_cfg/mask"].shape
            assert cube[f"{det}_cfg/ped"].shape[1:] == cube[f"{det}_data"].shape[1:]
        assert cube["jf_data"].shape[1:] == cube["jf_cfg/mask"].shape == (2, 16, 32)
        image = want["ep_data"]
        np.testing.assert_allclose(cube["ep_roi1"][()], image[:, 2:20, 3:30].sum(axis=(1, 2)))
        np.testing.assert_allclose(cube["ep_proj"][()], image.sum(axis=1))
        filled = want["ep_nEntries"] > 0
        assert filled.any()
        got = cube["ep_azav"][()]
        for b in np.flatnonzero(filled):
            np.testing.assert_allclose(got[b], _azav(want["ep_raw"][b], run), rtol=1e-9)
        assert np.all(got[~filled] == 0) and cube["ep_azav"].attrs["unit"] == "2th_deg"
        data = {det: cube[f"{det}_data"][()] for det in DETECTORS}
    tiffs = sorted(p.name for p in tmp_path.glob("*.tif"))
    assert len(tiffs) == 3 * (len(EDGES) - 1)
    for det, sums in data.items():
        for b in range(len(EDGES) - 1):
            page = tifffile.imread(tmp_path / f"{name}_{det}_{b:03d}.tif")
            np.testing.assert_array_equal(page, sums[b].astype(np.float32))
    assert not list(tmp_path.glob(".*partial"))
