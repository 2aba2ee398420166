"""Area detectors of a synthetic run: models, constants, geometry and raw frames.

Signal model, in keV per pixel for a shot of intensity ``s`` (``ipm2/sum / IPM2_REF``) and
Bragg-peak factor ``f`` (pump-probe response times rocking curve, see ``devices``):

- a diffuse ring plus a weak radial background made of single 9.5 keV photons, on average
  ``RING_OCCUPANCY * s`` photons per pixel, drawn at random positions each shot;
- a Bragg peak: a 2-D gaussian (sigma 1.5 px) in a 9x9 pixel box of the first module, of height
  ``peak_kev * s * f``; deterministic (no Poisson noise) so a calibrated frame can be compared
  with it. Its brightest pixels switch a Jungfrau to gain stages 1 and 2.

Raw words are ``ped[stage] + signal_keV * gain[stage] + noise``, rounded and clipped to the ADC
range; Jungfrau words carry the stage code in their top 2 bits (0, 1, 3; ~1e-5 of the pixels
get the invalid code 2); ePix10ka words (14-bit ADC) set bit 14 when the pixel switched from
its start range (high gain, auto-ranging H->L) to the low range, whose gain is 1/100 of it.
Noise outside the peak box is taken, per shot, at a random offset in a precomputed bank
of gaussian noise at the stage-0 mean rms (so it does not follow the small pixel-to-pixel
spread of the stored ``rms``). Half of the bad (mask 0) pixels are hot.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mpicube.detectors.constants import DetectorConstants

PHOTON_KEV = 9.5
RING_OCCUPANCY = 0.02  # mean photons per pixel per shot at intensity 1
PEAK_SIGMA_PX = 1.5
PEAK_HALF_BOX = 4  # the peak box is (2*4+1)^2 pixels
INVALID_FRACTION = 1e-5  # Jungfrau pixels per shot with gain code 2


@dataclass(frozen=True)
class ModelInfo:
    """A detector model: its type, raw frame shape and pixel pitch (µm)."""

    detector_type: str
    raw_shape: tuple[int, ...]
    pixel_um: float


@dataclass(frozen=True)
class Electronics:
    """Per detector type: per-stage constants, switching levels, ADC range and peak height."""

    ped_adu: tuple[float, ...]
    gain_adu_per_kev: tuple[float, ...]
    rms_adu: tuple[float, ...]
    stage_max_kev: tuple[float, ...]  # a pixel goes to stage i+1 above stage_max_kev[i]
    adc_max: int
    hot_adu: int
    peak_kev: float
    asic_grid: tuple[int, int]  # ASICs per module, (rows, columns)
    stage_codes: tuple[int, ...] = (0,)  # gain stage -> top 2 bits of the raw word
    invalid_code: int | None = None  # a top-2-bit code some pixels get by mistake


DETECTOR_MODELS: dict[str, ModelInfo] = {
    "jungfrau1M": ModelInfo("jungfrau", (2, 512, 1024), 75.0),
    "jungfrau4M": ModelInfo("jungfrau", (8, 512, 1024), 75.0),
    "jungfrau-small": ModelInfo("jungfrau", (2, 16, 32), 75.0),
    "epix10k2M": ModelInfo("epix10ka", (16, 352, 384), 100.0),
    "epix10ka-small": ModelInfo("epix10ka", (4, 16, 24), 100.0),
    "epix100": ModelInfo("epix100", (704, 768), 50.0),
    "epix100-small": ModelInfo("epix100", (16, 24), 50.0),
}

ELECTRONICS: dict[str, Electronics] = {
    "jungfrau": Electronics(
        ped_adu=(1500.0, 1200.0, 1000.0),
        gain_adu_per_kev=(40.0, 1.5, 0.1),
        rms_adu=(3.0, 1.0, 0.5),
        stage_max_kev=(300.0, 9000.0),
        adc_max=2**14 - 1,
        hot_adu=15000,
        peak_kev=40000.0,
        asic_grid=(2, 4),
        stage_codes=(0, 1, 3),
        invalid_code=2,
    ),
    "epix10ka": Electronics(  # auto-ranging high -> low (AHL); gains ~ 1 : 1/100
        ped_adu=(2800.0, 2600.0),
        gain_adu_per_kev=(16.4, 0.164),
        rms_adu=(4.0, 0.6),
        stage_max_kev=(600.0,),
        adc_max=2**14 - 1,
        hot_adu=15000,
        peak_kev=20000.0,
        asic_grid=(2, 2),
        stage_codes=(0, 1),
    ),
    "epix100": Electronics(
        ped_adu=(1200.0,),
        gain_adu_per_kev=(18.0,),
        rms_adu=(3.0,),
        stage_max_kev=(),
        adc_max=2**16 - 1,
        hot_adu=60000,
        peak_kev=1000.0,
        asic_grid=(2, 2),
    ),
}


def _modules(raw_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """Return (modules, rows, columns) of a raw shape, a 2-D shape being one module."""
    return (1, *raw_shape) if len(raw_shape) == 2 else raw_shape  # type: ignore[return-value]


def make_geometry(model: ModelInfo) -> dict[str, np.ndarray]:
    """Return ``ix``, ``iy`` (int32 image row/column) and ``x``, ``y`` (float32 µm) per pixel.

    ASICs are separated by 1-2 empty image pixels and modules by larger gaps; modules stack in
    one column (up to 2 modules) or two columns, the right column rotated by 180°. The beam,
    at (x, y) = (0, 0), is at the center of the image.
    """
    n_mod, rows, cols = _modules(model.raw_shape)
    asic_rows, asic_cols = ELECTRONICS[model.detector_type].asic_grid
    asic_gap = 2 if rows >= 256 else 1
    module_gap = max(3, rows // 32)
    r = np.arange(rows)
    c = np.arange(cols)
    local_r = r + (r // (rows // asic_rows)) * asic_gap
    local_c = c + (c // (cols // asic_cols)) * asic_gap
    mod_h, mod_w = int(local_r[-1]) + 1, int(local_c[-1]) + 1
    n_cols = 2 if n_mod > 2 else 1
    ix = np.empty((n_mod, rows, cols), dtype=np.int32)
    iy = np.empty((n_mod, rows, cols), dtype=np.int32)
    for m in range(n_mod):
        m_row, m_col = divmod(m, n_cols)
        rr, cc = (mod_h - 1 - local_r, mod_w - 1 - local_c) if m_col == 1 else (local_r, local_c)
        ix[m] = (m_row * (mod_h + module_gap) + rr)[:, None]
        iy[m] = (m_col * (mod_w + module_gap) + cc)[None, :]
    ix, iy = ix.reshape(model.raw_shape), iy.reshape(model.raw_shape)
    x = (ix - ix.max() / 2.0) * model.pixel_um
    y = (iy - iy.max() / 2.0) * model.pixel_um
    return {"ix": ix, "iy": iy, "x": x.astype(np.float32), "y": y.astype(np.float32)}


def make_constants(name: str, model: ModelInfo, rng: np.random.Generator) -> DetectorConstants:
    """Return pedestals, gains, rms, mask (~0.5 % bad) and geometry of one detector."""
    elec = ELECTRONICS[model.detector_type]
    shape = (len(elec.ped_adu), *model.raw_shape)

    def per_stage(means: tuple[float, ...], spread: float) -> np.ndarray:
        values = np.asarray(means)[(...,) + (None,) * len(model.raw_shape)]
        return (values * (1 + spread * rng.standard_normal(shape))).astype(np.float32)

    mask = (rng.random(model.raw_shape) >= 0.005).astype(np.uint8)
    return DetectorConstants(
        name=name,
        detector_type=model.detector_type,
        raw_shape=model.raw_shape,
        ped=per_stage(elec.ped_adu, 0.05),
        gain=per_stage(elec.gain_adu_per_kev, 0.03),
        rms=per_stage(elec.rms_adu, 0.05),
        mask=mask,
        **make_geometry(model),
    )


def peak_box(raw_shape: tuple[int, ...]) -> tuple[slice | int, ...]:
    """Return the index into a raw frame of the Bragg-peak box (first module, upper left)."""
    _, rows, cols = _modules(raw_shape)
    h = PEAK_HALF_BOX
    r0 = min(max(rows // 4, h), rows - 1 - h)
    c0 = min(max(cols // 3, h), cols - 1 - h)
    box = (slice(r0 - h, r0 + h + 1), slice(c0 - h, c0 + h + 1))
    return box if len(raw_shape) == 2 else (0, *box)


def peak_profile_kev(detector_type: str) -> np.ndarray:
    """Return the Bragg peak in keV over the peak box, for intensity 1 and peak factor 1."""
    d = np.arange(-PEAK_HALF_BOX, PEAK_HALF_BOX + 1)
    r2 = d[:, None] ** 2 + d[None, :] ** 2
    return ELECTRONICS[detector_type].peak_kev * np.exp(-0.5 * r2 / PEAK_SIGMA_PX**2)


def _ring_cdf(constants: DetectorConstants) -> np.ndarray:
    """Return the cumulative photon probability over the flat pixels (ring + radial background).

    Bad pixels and the peak box get no photons.
    """
    r = np.hypot(constants.x, constants.y)
    r_max = float(r.max())
    ring = np.exp(-0.5 * ((r - 0.6 * r_max) / (0.05 * r_max)) ** 2)
    weight = ring + 0.3 * np.exp(-r / (0.4 * r_max))
    weight[constants.mask == 0] = 0.0
    weight[peak_box(constants.raw_shape)] = 0.0
    cdf = np.cumsum(weight, dtype=np.float64).ravel()
    return cdf / cdf[-1]


class FrameSynth:
    """Makes raw frames of one detector from its constants, shot by shot."""

    def __init__(self, constants: DetectorConstants, rng: np.random.Generator) -> None:
        """Precompute the noise bank, the base frame and the photon distribution."""
        self.constants = constants
        self.elec = ELECTRONICS[constants.detector_type]
        self.rng = rng
        self.n_pixels = constants.n_pixels
        self.box = peak_box(constants.raw_shape)
        self.profile = peak_profile_kev(constants.detector_type)
        self.base = self._base_frame()
        sigma = self.elec.rms_adu[0]
        noise = np.rint(rng.normal(0.0, sigma, 2 * self.n_pixels)).clip(-10 * sigma, 10 * sigma)
        self.noise = noise.astype(np.int16).view(np.uint16)  # modular add == signed add
        self.cdf = _ring_cdf(constants)
        photon = PHOTON_KEV * constants.gain[0].ravel()
        self.photon_adu = np.rint(photon).astype(np.uint16)

    def _base_frame(self) -> np.ndarray:
        """Return the flat uint16 stage-0 pedestal frame, with half of the bad pixels hot."""
        base = np.rint(self.constants.ped[0]).astype(np.uint16).ravel()
        bad = np.flatnonzero(self.constants.mask.ravel() == 0)
        base[bad[::2]] = self.elec.hot_adu
        return base

    def fill(self, frame: np.ndarray, intensity: float, peak_factor: float) -> None:
        """Write one shot into ``frame`` (a flat uint16 view of ``n_pixels``); returns None."""
        offset = int(self.rng.integers(0, self.n_pixels))
        np.add(self.base, self.noise[offset : offset + self.n_pixels], out=frame)
        if intensity > 0:
            self._add_photons(frame, intensity)
            self._write_peak(frame.reshape(self.constants.raw_shape), intensity * peak_factor)
        if self.elec.invalid_code is not None:
            self._corrupt_gain_bits(frame)

    def _add_photons(self, frame: np.ndarray, intensity: float) -> None:
        """Add the shot's diffuse-ring photons (stage 0) to the flat ``frame``."""
        n_photons = self.rng.poisson(RING_OCCUPANCY * self.n_pixels * intensity)
        where = np.searchsorted(self.cdf, self.rng.random(n_photons), side="right")
        np.add.at(frame, where, self.photon_adu[where])

    def _write_peak(self, frame: np.ndarray, scale: float) -> None:
        """Overwrite the peak box of ``frame`` with the Bragg peak of height ``scale``."""
        kev = self.profile * scale
        stage = np.searchsorted(np.asarray(self.elec.stage_max_kev), kev)
        stage_index = (stage, *np.indices(kev.shape))
        ped = self.constants.ped[(slice(None), *self.box)][stage_index]
        gain = self.constants.gain[(slice(None), *self.box)][stage_index]
        rms = self.constants.rms[(slice(None), *self.box)][stage_index]
        adc = np.rint(ped + kev * gain + rms * self.rng.standard_normal(kev.shape))
        word = adc.clip(0, self.elec.adc_max).astype(np.uint16)
        if self.elec.stage_max_kev:
            word |= np.array(self.elec.stage_codes, np.uint16)[stage] << 14
        frame[self.box] = word

    def _corrupt_gain_bits(self, frame: np.ndarray) -> None:
        """Give a random ~1e-5 of the pixels of ``frame`` the invalid gain code."""
        n_bad = self.rng.poisson(INVALID_FRACTION * self.n_pixels)
        where = self.rng.integers(0, self.n_pixels, n_bad)
        frame[where] = (frame[where] & 0x3FFF) | (self.elec.invalid_code << 14)
