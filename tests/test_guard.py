"""The guard: a model trained on microtubules only is flagged on nuclei and not on microtubules;
an output that adds or removes structure is not consistent with its input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter

from restore.checkpoints import load_model
from restore.cli import main
from restore.config import load_run
from restore.guard import output_consistent, report
from restore.predict import predict
from restore.train import train
from simulate import simulate_pair, write_tiff

MT = ["shape=[256,256]", "train.patch=[32,32]", "train.batch_size=8", "train.filters=8",
      "train.val_patches=8", "train.workers=0", "train.steps=150", "train.val_every=150",
      "camera.photons=30"]


@pytest.fixture(scope="module")
def mt_model(tmp_path_factory):
    run = load_run("denoise2d", None, MT)
    out = tmp_path_factory.mktemp("mt")
    train(run, out, progress=False)
    model, run, _ = load_model(out)
    return model, run, out


def _nuclei(run):
    return run.sim.with_overrides({"sample.microtubules.density": 0.0, "sample.granules.density": 0.0,
                                   "sample.nuclei.density": 0.01, "sample.nuclei.radius": 2.5})


def test_microtubules_pass_nuclei_are_flagged(mt_model):
    model, run, _ = mt_model
    same = simulate_pair(run.sim, 7_000_000, 0).input
    r_same = report(same, predict(model, same, "YX"), run.sim)
    assert r_same["in_distribution"], r_same["reasons"]
    other = simulate_pair(_nuclei(run), 7_000_000, 0).input
    r_other = report(other, predict(model, other, "YX"), run.sim)
    assert r_other["in_distribution"] is False
    assert any(r.startswith("structure") for r in r_other["reasons"])


def test_another_camera_is_flagged(mt_model):
    model, run, _ = mt_model
    cfg = run.sim.with_overrides({"camera.gain": 3.0})
    x = simulate_pair(cfg, 7_000_000, 1).input
    r = report(x, predict(model, x, "YX"), run.sim)
    assert r["in_distribution"] is False
    assert any(r.startswith("noise") for r in r["reasons"])


def test_output_that_explains_the_input_is_consistent_and_a_wrong_one_is_not(mt_model):
    _, run, _ = mt_model
    p = simulate_pair(run.sim, 7_000_000, 2)
    ok, why, _ = output_consistent(p.input, p.clean, run.sim)  # the true expected image
    assert ok, why
    blurred = gaussian_filter(p.clean, 4.0)  # structure smoothed away
    assert not output_consistent(p.input, blurred, run.sim)[0]
    painted = p.clean.copy()
    painted[40:80, 60:64] += 0.5 * (p.clean.max() - run.sim.camera.offset)  # a filament drawn in
    assert not output_consistent(p.input, painted, run.sim)[0]


def test_predict_report_on_the_command_line(mt_model, tmp_path, capsys):
    _, run, out = mt_model
    x = simulate_pair(_nuclei(run), 7_000_000, 3).input
    write_tiff(tmp_path / "nuclei.tif", x, (0.1, 0.1))
    code = main(["predict", "--model", str(out), str(tmp_path / "nuclei.tif"), "-o",
                 str(tmp_path / "r.tif"), "--report", str(tmp_path / "report.json")])
    assert code == 0
    assert "warning: the guard says" in capsys.readouterr().out
    rep = json.loads((tmp_path / "report.json").read_text())
    assert rep["in_distribution"] is False and rep["reasons"]
    assert set(rep) >= {"in_distribution", "output_consistent", "reasons"}


def test_guard_says_where_it_does_not_apply(mt_model):
    _, run, _ = mt_model
    cfg = run.sim.with_overrides({"task": "deconvolve", "shape": [8, 64, 64]})
    r = report(np.zeros((8, 64, 64)), np.zeros((8, 64, 64)), cfg)
    assert r["in_distribution"] is None and "2D images" in r["reasons"][0]
    assert np.isfinite(r["stats"].get("x", 0.0))
