"""det_proc functions: the azimuthal average of a ring, ROIs and projections, bad arguments."""

from __future__ import annotations

import numpy as np
import pytest

from mpicube import postproc
from mpicube.detectors import DetectorConstants
from mpicube.errors import CubeError


def _detector(shape=(2, 60, 80), pixel_um=100.0) -> DetectorConstants:
    n_mod, rows, cols = shape
    ix = np.arange(n_mod)[:, None, None] * rows + np.arange(rows)[None, :, None]
    iy = np.broadcast_to(np.arange(cols)[None, None, :], shape)
    ix = np.broadcast_to(ix, shape)
    x = (ix - (n_mod * rows - 1) / 2) * pixel_um
    y = (iy - (cols - 1) / 2) * pixel_um
    mask = np.ones(shape, np.uint8)
    mask[0, :3] = 0
    return DetectorConstants(
        "det",
        "epix10ka",
        shape,
        ped=np.zeros((2, *shape)),
        gain=np.ones((2, *shape)),
        mask=mask,
        x=x,
        y=y,
    )


def _bind(spec: dict, const: DetectorConstants, shape=None) -> list[postproc.PostProc]:
    return postproc.bind(postproc.parse(spec), const, shape or const.raw_shape, "cfg.py")


@pytest.mark.parametrize("unit", ["2th_deg", "q_A^-1"])
def test_azimuthal_average_of_a_ring_peaks_at_its_radius(unit):
    const = _detector()
    center = (150.0, -220.0)
    radius_um, distance_mm, energy = 2500.0, 50.0, 9.5
    r = np.hypot(const.x - center[0], const.y - center[1])
    ring = 1000.0 * np.exp(-0.5 * ((r - radius_um) / 80.0) ** 2) + 5.0
    spec = {
        "azav": {
            "center": list(center),
            "distance": distance_mm,
            "nbins": 200,
            "unit": unit,
            "energy_kev": energy,
        }
    }
    (proc,) = _bind(spec, const)
    profile = proc.apply(ring, ring)
    axis = proc.attrs["axis"]
    two_theta = np.arctan(radius_um / (distance_mm * 1000.0))
    want = (
        np.degrees(two_theta)
        if unit == "2th_deg"
        else 4 * np.pi * np.sin(two_theta / 2) * energy / postproc.HC_KEV_ANGSTROM
    )
    step = axis[1] - axis[0]
    assert abs(axis[np.nanargmax(profile)] - want) <= step
    assert proc.shape == (200,) and proc.attrs["unit"] == unit
    assert proc.attrs["pixels"].sum() == const.mask.sum()  # masked pixels are left out


def test_azimuthal_average_is_the_mean_per_radial_bin():
    const = _detector((1, 10, 10))
    values = np.arange(100.0).reshape(1, 10, 10)
    (proc,) = _bind({"a": {"func": "azav", "distance": 10, "nbins": 4}}, const)
    coord = np.degrees(np.arctan(np.hypot(const.x, const.y) / 10000.0)).ravel()
    good = const.mask.ravel() != 0
    edges = np.linspace(coord[good].min(), coord[good].max(), 5)
    want = []
    for i in range(4):
        upper = coord <= edges[i + 1] if i == 3 else coord < edges[i + 1]
        sel = good & (coord >= edges[i]) & upper
        want.append(values.ravel()[sel].mean())
    np.testing.assert_allclose(proc.apply(values, values), want)


def test_rois_and_projections_on_an_image():
    const = _detector()
    image = np.random.default_rng(0).random((120, 80))
    spec = {
        "roi1": {"func": "roi_sum", "roi": [[10, 20], [5, 30]]},
        "cut": {"func": "roi_image", "roi": [[10, 20], [5, 30]]},
        "proj0": {"func": "projection", "axis": 0},
        "proj1": {"func": "projection", "axis": 1, "roi": [[0, 50], [0, 80]]},
    }
    procs = {p.key: p for p in _bind(spec, const, (120, 80))}
    raw = np.zeros(const.raw_shape)
    assert procs["roi1"].apply(raw, image) == pytest.approx(image[10:20, 5:30].sum())
    np.testing.assert_array_equal(procs["cut"].apply(raw, image), image[10:20, 5:30])
    np.testing.assert_allclose(procs["proj0"].apply(raw, image), image.sum(axis=0))
    np.testing.assert_allclose(procs["proj1"].apply(raw, image), image[:50].sum(axis=1))
    assert [procs[k].shape for k in spec] == [(), (10, 25), (80,), (50,)]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"r": {"func": "roi_sum", "roi": [[0, 5], [0, 5]]}}, "roi .* has 2 axes"),
        ({"r": {"func": "roi_sum", "roi": [[0, 5], [0, 5], [0, 99]]}}, "roi .* is outside"),
        ({"p": {"func": "projection", "axis": 3}}, "axis 3 does not exist"),
    ],
)
def test_bind_checks_the_data_shape(spec, message):
    with pytest.raises(CubeError, match=f"cfg.py: det: det_proc '.': {message}"):
        _bind(spec, _detector())


def test_azav_needs_pixel_positions():
    const = _detector()
    bare = DetectorConstants("det", "epix10ka", const.raw_shape, ped=const.ped, gain=const.gain)
    with pytest.raises(CubeError, match="azav needs the pixel positions"):
        _bind({"azav": {"distance": 1}}, bare)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ([1], "must be a dict"),
        ({"data": {"func": "azav"}}, "key 'data'"),
        ({"x": {"func": "fft"}}, "unknown function 'fft'"),
        ({"azav": {"distance": 1, "unit": "q_A^-1"}}, "needs 'energy_kev'"),
        ({"azav": {"distance": 1, "nbins": 0}}, "nbins must be a positive integer"),
        ({"r": {"func": "roi_image", "roi": [[5, 1]]}}, "roi must be"),
    ],
)
def test_parse_refuses_bad_specs(spec, message):
    with pytest.raises(ValueError, match=message):
        postproc.parse(spec)
