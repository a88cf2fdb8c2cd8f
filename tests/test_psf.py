"""PSF models against diffraction theory."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from simulate import psf
from simulate.errors import SynthcareError

LAM = 0.52


@pytest.mark.parametrize(("na", "ni"), [(0.8, 1.0), (0.8, 1.33), (1.2, 1.33)])
def test_widefield_widths_match_theory(na, ni):
    dz, dx = 0.02, 0.02
    h = psf.widefield((241, 81, 81), (dz, dx, dx), na=na, wavelength=LAM, ni=ni)
    c = 120
    lateral = psf.fwhm(h[c, 40, :], dx)
    axial = psf.fwhm(h[:, 40, 40], dz)
    assert lateral == pytest.approx(0.51 * LAM / na, rel=0.05)
    assert axial == pytest.approx(0.88 * LAM / (ni - np.sqrt(ni**2 - na**2)), rel=0.10)


def test_paraxial_axial_width_would_be_wrong_at_high_na():
    # the non-paraxial model must not reproduce the paraxial 2 n λ / NA² axial width at NA 1.2
    h = psf.widefield((241, 81, 81), (0.02, 0.02, 0.02), na=1.2, wavelength=LAM, ni=1.33)
    axial = psf.fwhm(h[:, 40, 40], 0.02)
    paraxial = 0.886 * 2 * 1.33 * LAM / 1.2**2
    assert paraxial / axial > 1.25


def test_widefield_planes_sum_to_one_and_centred():
    h = psf.widefield((21, 40, 41), (0.1, 0.05, 0.05), na=1.2, wavelength=LAM, ni=1.33)
    assert h.dtype == np.float32
    np.testing.assert_allclose(h.sum(axis=(1, 2)), 1.0, rtol=1e-5)
    assert np.unravel_index(np.argmax(h), h.shape) == (10, 20, 20)
    np.testing.assert_allclose(h, h[::-1], rtol=1e-5, atol=1e-9)  # symmetric in z
    np.testing.assert_allclose(h[:, 1:, :], h[:, 1:, :][:, ::-1, :], rtol=1e-4, atol=1e-9)


def test_widefield_2d_is_airy_plane():
    h2 = psf.widefield((41, 41), (0.03, 0.03), na=1.0, wavelength=LAM, ni=1.33)
    h3 = psf.widefield((5, 41, 41), (0.1, 0.03, 0.03), na=1.0, wavelength=LAM, ni=1.33)
    np.testing.assert_allclose(h2, h3[2], rtol=1e-5, atol=1e-8)
    assert h2.sum() == pytest.approx(1.0, rel=1e-5)


def test_gaussian_widths_and_norm():
    g = psf.gaussian((81, 61, 61), (0.02, 0.01, 0.01), na=1.2, wavelength=LAM, ni=1.33)
    assert g.sum() == pytest.approx(1.0, rel=1e-5)
    assert psf.fwhm(g[40, 30], 0.01) == pytest.approx(psf.lateral_fwhm(1.2, LAM), rel=0.02)
    assert psf.fwhm(g[:, 30, 30], 0.02) == pytest.approx(psf.axial_fwhm(1.2, LAM, 1.33), rel=0.02)


def test_confocal_narrower_than_widefield_and_pinhole_widens():
    shape, sp = (61, 61, 61), (0.05, 0.02, 0.02)
    kw = {"na": 1.2, "wavelength": LAM, "ni": 1.33}
    wf = psf.widefield(shape, sp, **kw)
    closed = psf.confocal(shape, sp, pinhole_au=0.0, **kw)
    open1 = psf.confocal(shape, sp, pinhole_au=1.0, **kw)
    assert closed.sum() == pytest.approx(1.0, rel=1e-5)
    w_wf, w0, w1 = (psf.fwhm(h[30, 30], 0.02) for h in (wf, closed, open1))
    # ideal point pinhole with equal wavelengths: h² is ~1/√2 as wide as h
    assert w0 / w_wf == pytest.approx(1 / np.sqrt(2), rel=0.06)
    assert w0 < w1 < w_wf * 1.01
    # sectioning: the plane sums fall with defocus (widefield planes all sum to 1)
    sums = open1.sum(axis=(1, 2))
    assert sums[30] > 5 * sums[0]


def test_lightsheet_plane_sums_follow_sheet():
    shape, sp = (41, 41, 41), (0.1, 0.05, 0.05)
    h = psf.lightsheet(shape, sp, na=1.0, wavelength=LAM, ni=1.33, sheet_fwhm=1.0)
    z = (np.arange(41) - 20) * 0.1
    np.testing.assert_allclose(h.sum(axis=(1, 2)), np.exp(-4 * np.log(2) * z**2), rtol=1e-4)


def test_measured_psf_round_trip(tmp_path):
    kw = {"na": 1.0, "wavelength": LAM, "ni": 1.33}
    fine = psf.widefield((31, 64, 64), (0.1, 0.04, 0.04), **kw)
    stack = (fine / fine.max() * 1000 + 50).astype(np.float32)  # with a camera offset
    path = tmp_path / "bead.tif"
    tifffile.imwrite(path, stack, imagej=True, resolution=(25.0, 25.0),
                     metadata={"spacing": 0.1, "unit": "um", "axes": "ZYX"})
    target_shape, target_sp = (11, 33, 33), (0.2, 0.05, 0.05)
    got = psf.measured(path, target_shape, target_sp)
    want = psf.widefield(target_shape, target_sp, **kw)
    np.testing.assert_allclose(got.sum(axis=(1, 2)), 1.0, rtol=1e-4)
    assert np.abs(got - want).max() < 0.05 * want.max()
    assert np.unravel_index(np.argmax(got), got.shape) == (5, 16, 16)


def test_measured_psf_errors(tmp_path):
    with pytest.raises(SynthcareError, match="not found"):
        psf.measured(tmp_path / "missing.tif", (5, 9, 9), (0.1, 0.1, 0.1))
    bad = tmp_path / "line.tif"
    tifffile.imwrite(bad, np.ones((1, 1, 7), np.float32))
    with pytest.raises(SynthcareError, match="2D or 3D image"):
        psf.measured(bad, (5, 9, 9), (0.1, 0.1, 0.1), file_spacing=(0.1, 0.1, 0.1))
    text = tmp_path / "notes.tif"
    text.write_text("not a tiff")
    with pytest.raises(SynthcareError, match="not a readable TIFF"):
        psf.measured(text, (5, 9, 9), (0.1, 0.1, 0.1))
    nometa = tmp_path / "nometa.tif"
    tifffile.imwrite(nometa, np.ones((5, 9, 9), np.float32))
    with pytest.raises(SynthcareError, match="psf_file_spacing"):
        psf.measured(nometa, (5, 9, 9), (0.1, 0.1, 0.1))


def test_bad_optics_rejected():
    with pytest.raises(SynthcareError, match="na"):
        psf.widefield((5, 9, 9), (0.1, 0.1, 0.1), na=1.4, wavelength=LAM, ni=1.33)
    with pytest.raises(SynthcareError, match="shape"):
        psf.widefield((5, 9), (0.1, 0.1, 0.1), na=1.0, wavelength=LAM, ni=1.33)


def _bead_file(path, noise=0.0, unit="um", scale=1.0, seed=0):
    kw = {"na": 1.0, "wavelength": LAM, "ni": 1.33}
    fine = psf.widefield((31, 64, 64), (0.1, 0.04, 0.04), **kw)
    stack = fine / fine.max() * 2000 + 100
    stack += noise * np.random.default_rng(seed).standard_normal(stack.shape)
    tifffile.imwrite(path, stack.astype(np.float32), imagej=True,
                     resolution=(1 / (0.04 * scale), 1 / (0.04 * scale)),
                     metadata={"spacing": 0.1 * scale, "unit": unit, "axes": "ZYX"})
    return kw


def test_measured_psf_noise_leaves_no_pedestal(tmp_path):
    kw = _bead_file(tmp_path / "noisy.tif", noise=10.0)
    shape, sp = (11, 33, 33), (0.2, 0.04, 0.04)
    got = psf.measured(tmp_path / "noisy.tif", shape, sp)
    want = psf.widefield(shape, sp, **kw)
    assert got.max() == pytest.approx(want.max(), rel=0.05)
    assert got[5].max() == pytest.approx(want[5].max(), rel=0.05)


def test_measured_psf_units_in_nanometres(tmp_path):
    _bead_file(tmp_path / "nm.tif", unit="nm", scale=1000.0)
    _bead_file(tmp_path / "um.tif")
    shape, sp = (5, 21, 21), (0.2, 0.05, 0.05)
    np.testing.assert_allclose(psf.measured(tmp_path / "nm.tif", shape, sp),
                               psf.measured(tmp_path / "um.tif", shape, sp), rtol=1e-5, atol=1e-8)


def test_measured_2d_psf_serves_2d_simulations_only(tmp_path):
    plane = psf.widefield((64, 64), (0.04, 0.04), na=1.0, wavelength=LAM, ni=1.33)
    tifffile.imwrite(tmp_path / "p2.tif", (plane * 1e5 + 10).astype(np.float32), imagej=True,
                     resolution=(25.0, 25.0), metadata={"unit": "um", "axes": "YX"})
    thin = psf.measured(tmp_path / "p2.tif", (5, 21, 21), (0.1, 0.05, 0.05), thin_sample=True)
    assert thin[2].sum() == pytest.approx(1.0, rel=1e-5) and thin[[0, 1, 3, 4]].max() == 0
    with pytest.raises(SynthcareError, match="z-stack"):
        psf.measured(tmp_path / "p2.tif", (5, 21, 21), (0.1, 0.05, 0.05))


def test_model_fwhm_matches_the_diffraction_integral():
    from simulate.config import OpticsConfig

    fz, fxy = psf.model_fwhm(OpticsConfig(na=1.2, ni=1.33, wavelength=LAM))
    h = psf.widefield((401, 161, 161), (0.01, 0.01, 0.01), na=1.2, wavelength=LAM, ni=1.33)
    assert fxy == pytest.approx(psf.fwhm(h[200, 80], 0.01), rel=0.01)
    assert fz == pytest.approx(psf.fwhm(h[:, 80, 80], 0.01), rel=0.02)
