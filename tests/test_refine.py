"""Self-refinement: training in stages on restorations of the user's own raw images."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from restore.checkpoints import load_checkpoint
from restore.config import load_run
from restore.refine import stage_runs
from restore.train import _load_weights, build_model, read_log, train
from simulate import SynthcareError, simulate_pair, write_tiff

TINY = ["shape=[64,64]", "train.patch=[32,32]", "train.batch_size=4", "train.filters=8",
        "train.val_patches=4", "train.workers=0", "train.patches_per_image=4", "train.val_every=5"]


def _raw(tmp_path, name="raw.tif"):
    """A raw camera image (ADU) of the run's own camera, larger than the training shape."""
    run = load_run("denoise2d", None, [*TINY, "shape=[96,96]"])
    path = tmp_path / name
    write_tiff(path, simulate_pair(run.sim, 5, 0).input, (0.1, 0.1))
    return path


def _run(tmp_path, *extra):
    return load_run("denoise2d", None, [*TINY, f"train.refine.images=[{_raw(tmp_path)}]", *extra])


def test_the_budget_is_split_and_the_last_stage_is_the_run_folder(tmp_path):
    run = _run(tmp_path, "train.steps=100", "train.minutes=10", "train.refine.rounds=2",
               "train.refine.start=0.4")
    stages = stage_runs(run, tmp_path / "out")
    assert [s.train.steps for _, s in stages] == [40, 30, 30]
    assert [s.train.minutes for _, s in stages] == pytest.approx([4, 3, 3])
    assert stages[-1][0] == tmp_path / "out" and stages[0][0] == tmp_path / "out/stages/0"
    assert stages[0][1].sample.images.folder is None
    for k, (_, s) in enumerate(stages[1:], 1):
        assert s.sample.images.folder == str(tmp_path / f"out/stages/restored-{k}")
        assert s.sample.images.units == "adu" and s.sample.images.fraction == 0.5
        assert not s.train.refine.images  # a stage never refines again


def test_refined_training_restores_the_image_and_warm_starts(tmp_path, monkeypatch):
    run = _run(tmp_path, "train.steps=10")
    starts = []
    real = _load_weights
    monkeypatch.setattr("restore.train._load_weights",
                        lambda model, d: (starts.append(d), real(model, d))[1])
    out = tmp_path / "out"
    summary = train(run, out, progress=False)
    assert summary["status"] == "finished" and summary["steps"] == 4 + 6
    assert starts == [out / "stages" / "0"]
    restored = list((out / "stages" / "restored-1").glob("*.tif"))
    assert [p.name for p in restored] == ["000_raw.tif"]
    assert read_log(out)[-1]["step"] == 6 and (out / "best.pt").exists()
    assert load_checkpoint(out)["run"]["sample"]["images"]["units"] == "adu"
    with pytest.raises(SynthcareError, match="already holds a trained model"):
        train(run, out, progress=False)
    again = train(run, out, progress=False, resume=True)  # every stage done: nothing retrained
    assert again["steps"] == 10 and read_log(out)[-1]["step"] == 6


def test_an_interrupted_refinement_resumes_at_its_stage(tmp_path):
    run = _run(tmp_path, "train.steps=10")
    out = tmp_path / "out"
    first = load_run("denoise2d", None, [*TINY, "train.steps=2"])
    train(first, out / "stages" / "0", progress=False)  # stage 0 stopped after 2 of its 4 steps
    summary = train(run, out, progress=False, resume=True)
    assert summary["steps"] == 4 + 6 and read_log(out / "stages" / "0")[-1]["step"] == 4


def test_refinement_refuses_bad_images_before_any_work(tmp_path):
    small = tmp_path / "small.tif"
    write_tiff(small, np.ones((32, 32), np.float32), (0.1, 0.1))
    for path, message in [(tmp_path / "missing.tif", "is not a file"),
                          (small, "smaller than the training shape")]:
        run = load_run("denoise2d", None, [*TINY, "train.steps=10",
                                           f"train.refine.images=[{path}]"])
        with pytest.raises(SynthcareError, match=message):
            train(run, tmp_path / "out", progress=False)
        assert not (tmp_path / "out" / "stages").exists()


def test_warm_start_needs_the_same_network(tmp_path):
    run = load_run("denoise2d", None, [*TINY, "train.steps=2"])
    train(run, tmp_path / "a", progress=False)
    wide = load_run("denoise2d", None, [*TINY, "train.filters=16"])
    with pytest.raises(SynthcareError, match="network differs"):
        _load_weights(build_model(wide, 2), tmp_path / "a")
    same = build_model(run, 2)
    _load_weights(same, tmp_path / "a")
    assert torch.equal(same.state_dict()[next(iter(same.state_dict()))],
                       load_checkpoint(tmp_path / "a")["model"][next(iter(same.state_dict()))])


def test_refining_a_3d_run_is_one_clear_line(tmp_path):
    from restore.refine import read_refine_images

    run = load_run("denoise3d", None, [f"train.refine.images=[{tmp_path / 'raw.tif'}]"])
    with pytest.raises(SynthcareError, match="refines 2D runs"):
        read_refine_images(run)
