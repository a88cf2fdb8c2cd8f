"""Configuration and command line: every bad input gets one clear error naming the parameter."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from restore.cli import main
from simulate.config import SimConfig, load
from simulate.config_io import field_names, list_presets
from simulate.errors import ConfigError


def test_every_preset_loads_and_round_trips(tmp_path):
    assert {"denoise2d", "denoise3d", "upsample3d", "isotropic", "deconvolve", "n2n"} <= set(
        list_presets())
    for name in list_presets():
        cfg = SimConfig.from_preset(name)
        path = tmp_path / f"{name}.yaml"
        cfg.to_yaml(path)
        assert SimConfig.from_yaml(path) == cfg


def test_overrides_parse_yaml_values():
    cfg = load("denoise2d", None, ["shape=[16,64,64]", "optics.na=1.0", "optics.psf=confocal",
                                   "camera.em_gain=null", "sample.granules.density=0.5"])
    assert cfg.shape == (16, 64, 64) and cfg.optics.na == 1.0 and cfg.optics.psf == "confocal"
    assert cfg.sample.granules.density == 0.5
    assert "optics.na" in field_names(SimConfig) and "sample.microtubules.density" in field_names(
        SimConfig)


@pytest.mark.parametrize(("overrides", "name"), [
    (["shape=[0,64]"], "shape"),
    (["shape=[64,-3,64]"], "shape"),
    (["sampling.pixel=-0.1"], "sampling.pixel"),
    (["optics.na=1.4"], "optics.na"),
    (["optics.wavelength=0"], "optics.wavelength"),
    (["task=segment"], "task"),
    (["optics.nA=1.0"], "optics.nA"),
    (["camera.photons=0"], "camera.photons"),
    (["task=upsample", "shape=[64,64]"], "upsample"),
    (["optics.psf=measured"], "psf_file"),
    (["notakey"], "name=value"),
])
def test_bad_settings_raise_config_error(overrides, name):
    with pytest.raises(ConfigError, match=name.replace(".", r"\.")):
        load("denoise2d", None, overrides)


def test_unknown_preset_and_missing_source():
    with pytest.raises(ConfigError, match=r"unknown preset 'denoise4d'.*denoise2d"):
        load("denoise4d")
    with pytest.raises(ConfigError, match="--preset"):
        load()
    with pytest.raises(ConfigError, match="not found"):
        load(config="/nonexistent/cfg.yaml")


def test_config_file_with_unknown_field(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({"task": "denoise", "optics": {"aperture": 1.0}}))
    with pytest.raises(ConfigError, match=r"optics\.aperture: unknown setting"):
        load(config=path)


def test_cli_errors_are_one_line_without_traceback(tmp_path, capsys):
    assert main(["simulate", "--preset", "denoise2d", "--set", "optics.na=2", "--out",
                 str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("synthcare: error:") and "optics.na" in err and "Traceback" not in err
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["simulate", "--preset", "denoise2d", "--out", str(blocker / "sub")]) == 2
    assert "not a folder" in capsys.readouterr().err
    bad_psf = tmp_path / "psf.tif"
    bad_psf.write_text("no tiff")
    assert main(["simulate", "--preset", "denoise2d", "--set", "optics.psf=measured", "--set",
                 f"optics.psf_file={bad_psf}", "--n", "1", "--out", str(tmp_path / "y")]) == 2
    assert "not a readable TIFF" in capsys.readouterr().err


def test_cli_presets_lists_and_prints(capsys):
    assert main(["presets"]) == 0
    assert "denoise2d" in capsys.readouterr().out
    assert main(["presets", "upsample3d"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["task"] == "upsample"
    assert main(["presets", "--fields"]) == 0
    assert "camera.photons" in capsys.readouterr().out.split()


def test_config_is_frozen_and_hashable():
    cfg = SimConfig()
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen error
        cfg.task = "n2n"
    assert hash(cfg) == hash(SimConfig())
    assert np.isfinite(cfg.optics.na)
