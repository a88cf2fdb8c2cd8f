"""Hostile inputs (issue 17): every refusal is one line, before any work, and leaves the disk as
it was; no user file is overwritten; a folder has one writer; corrupt checkpoints are named."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from restore import train as train_mod
from restore.checkpoints import load_model
from restore.cli import main
from restore.config import load_run
from restore.train import train
from simulate import SynthcareError, read_tiff, write_tiff
from simulate.paths import LOCK_NAME, folder_lock

TINY = ["shape=[64,64]", "train.patch=[32,32]", "train.batch_size=4", "train.filters=8",
        "train.val_patches=4", "train.workers=0", "train.patches_per_image=4"]
SETS = [a for s in TINY for a in ("--set", s)]
SIM = ["--set", "shape=[64,64]"]


def _snapshot(root) -> dict:
    """Every path under root with its bytes (files) or None (folders)."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("synthcare: error:") and err.count("\n") == 1, err
    assert "Traceback" not in err
    return err


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "run"
    train(load_run("denoise2d", None, [*TINY, "train.steps=2", "train.val_every=1"]), out,
          progress=False)
    return out


@pytest.fixture
def raw_tiff(tmp_path):
    img = np.random.default_rng(0).poisson(20, (64, 64)).astype(np.uint16) + 100
    path = tmp_path / "raw.tif"
    tifffile.imwrite(path, img)
    return path


# 1. a folder of real pairs in the CSBDeep layout is never overwritten
def test_simulate_refuses_a_folder_of_foreign_pairs(tmp_path, capsys):
    out = tmp_path / "pairs"
    for sub in ("low", "GT"):
        (out / sub).mkdir(parents=True)
        write_tiff(out / sub / "0000.tif", np.full((8, 8), 7.0), (0.1, 0.1))
    before = _snapshot(tmp_path)
    assert main(["simulate", "--preset", "denoise2d", *SIM, "--n", "1", "--out", str(out)]) == 2
    err = _one_line_error(capsys)
    assert "did not write" in err and "--overwrite" in err
    assert _snapshot(tmp_path) == before
    assert main(["simulate", "--preset", "denoise2d", *SIM, "--n", "1", "--out", str(out),
                 "--overwrite"]) == 0
    assert read_tiff(out / "low" / "0000.tif")[0].shape == (64, 64)
    # our own dataset resumes without --overwrite
    assert main(["simulate", "--preset", "denoise2d", *SIM, "--n", "2", "--out", str(out)]) == 0
    assert (out / "low" / "0001.tif").exists() and not (out / LOCK_NAME).exists()


def test_simulate_never_replaces_a_users_config_yaml(tmp_path, capsys):
    (tmp_path / "config.yaml").write_text("task: denoise\n")
    assert main(["simulate", "--config", str(tmp_path / "config.yaml"), "--set", "shape=[32,32]",
                 "--n", "1", "--out", str(tmp_path)]) == 2
    assert "config.yaml" in _one_line_error(capsys)
    assert (tmp_path / "config.yaml").read_text() == "task: denoise\n"


# 2, 3. a refused run leaves nothing behind, so a later valid run in the same folder works
def _psf_file(tmp_path, kind):
    path = tmp_path / f"psf_{kind}.tif"
    if kind == "2d":
        write_tiff(path, np.ones((9, 9)), (0.1, 0.1))
    elif kind == "zero":
        write_tiff(path, np.zeros((9, 9, 9)), (0.1, 0.1, 0.1))
    elif kind == "nan":
        a = np.ones((9, 9, 9))
        a[4, 4, 4] = np.nan
        write_tiff(path, a, (0.1, 0.1, 0.1))
    elif kind == "negative":
        write_tiff(path, -np.ones((9, 9, 9)), (0.1, 0.1, 0.1))
    elif kind == "empty":
        path.write_bytes(b"")
    return path


@pytest.mark.parametrize(("args", "message"), [
    (["--set", "shape=[4096,4096,4096]"], "too large"),
    (["--seed", "-1"], "--seed"),
    (["--n", "0"], "--n"),
    (["psf:missing"], "not found"),
    (["psf:2d"], "2D"),
    (["psf:zero"], "no light"),
    (["psf:nan"], "NaN"),
    (["psf:negative"], "no light"),
    (["psf:empty"], "not a readable TIFF"),
])
def test_refused_simulate_leaves_no_trace(tmp_path, capsys, args, message):
    if args[0].startswith("psf:"):
        psf = _psf_file(tmp_path, args[0][4:])
        args = ["--set", "optics.psf=measured", "--set", f"optics.psf_file={psf}"]
    out = tmp_path / "data"
    base = ["simulate", "--preset", "denoise3d", "--set", "shape=[8,32,32]", "--n", "1"]
    before = _snapshot(tmp_path)
    assert main([*base, *args, "--out", str(out), "--preview", str(tmp_path / "p.png")]) == 2
    assert message in _one_line_error(capsys)
    assert _snapshot(tmp_path) == before
    assert main([*base, "--out", str(out)]) == 0  # the folder is not poisoned


# 5. corrupt checkpoints are named; an intact one is used with a warning
def test_corrupt_checkpoints(tmp_path, capsys, model_dir, raw_tiff):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(model_dir, run)
    best = (run / "best.pt").read_bytes()
    (run / "best.pt").write_bytes(best[: len(best) // 2])
    assert main(["predict", "--model", str(run), str(raw_tiff), "-o", str(tmp_path / "a.tif")]) == 0
    err = capsys.readouterr().err
    assert "best.pt is corrupt" in err and "using last.pt" in err
    (run / "last.pt").write_bytes(b"not a checkpoint")
    for argv in (["predict", "--model", str(run), str(raw_tiff), "-o", str(tmp_path / "b.tif")],
                 ["evaluate", "--model", str(run), "--n", "1"],
                 ["train", "--preset", "denoise2d", *SETS, "--steps", "4", "--out", str(run),
                  "--resume"]):
        assert main(argv) == 2
        err = _one_line_error(capsys)
        assert "last.pt" in err and "corrupt" in err
    assert not (tmp_path / "b.tif").exists()
    torch_file = tmp_path / "foreign" / "best.pt"
    torch_file.parent.mkdir()
    import torch

    torch.save({"weights": 1}, torch_file)
    with pytest.raises(SynthcareError, match="not a synthcare checkpoint"):
        load_model(torch_file.parent)


# 6. output paths are checked before the work; missing parents are created
def test_outputs_checked_before_work_and_parents_created(tmp_path, capsys, model_dir, raw_tiff):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert main(["predict", "--model", str(model_dir), str(raw_tiff), "-o",
                 str(tmp_path / "new" / "out.tif")]) == 0
    assert (tmp_path / "new" / "out.tif").exists()
    assert main(["evaluate", "--model", str(model_dir), "--n", "1", "--json",
                 str(tmp_path / "missing" / "s.json")]) == 0
    assert (tmp_path / "missing" / "s.json").exists()
    capsys.readouterr()
    assert main(["predict", "--model", str(model_dir), str(raw_tiff), "-o", str(raw_tiff)]) == 2
    assert "is the input image" in _one_line_error(capsys)
    assert main(["evaluate", "--model", str(model_dir), "--n", "0"]) == 2
    assert "--n must be at least 1" in _one_line_error(capsys)


# 7. an RGB TIFF is restored per channel and written in ImageJ's axis order
def test_predict_rgb_tiff(tmp_path, capsys, model_dir):
    rgb = np.random.default_rng(1).integers(0, 255, (40, 48, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "rgb.tif", rgb, photometric="rgb")
    assert main(["predict", "--model", str(model_dir), str(tmp_path / "rgb.tif"), "-o",
                 str(tmp_path / "out.tif")]) == 0
    assert "axes CYX" in capsys.readouterr().out
    out, meta = read_tiff(tmp_path / "out.tif")
    assert out.shape == (3, 40, 48) and meta["axes"] == "CYX"


# 9. a missing optional package skips, never errors at collection
def test_missing_parent_package_is_not_a_collection_error():
    sys.path.insert(0, str(Path(__file__).parent))
    from test_render_cuda import _has_module

    assert not _has_module("no_such_package_synthcare.sub")
    assert _has_module("numpy.fft")


# 10. one writer per folder; a killed holder leaves no stale lock
def test_second_writer_is_refused_and_a_killed_holder_frees_the_folder(tmp_path, capsys):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\nfrom simulate.paths import folder_lock\n"
         f"with folder_lock({str(out)!r}):\n    print('held', flush=True)\n    time.sleep(120)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        before = _snapshot(tmp_path)
        assert main(["train", "--preset", "denoise2d", *SETS, "--steps", "2", "--out", str(out)]) == 2
        err = _one_line_error(capsys)
        assert str(out) in err and f"process {holder.pid}" in err
        assert main(["simulate", "--preset", "denoise2d", *SIM, "--n", "1", "--out", str(out)]) == 2
        assert "being written" in _one_line_error(capsys)
        assert _snapshot(tmp_path) == before
    finally:
        holder.kill()
        holder.wait()
    with folder_lock(out):  # the kernel dropped the killed process's lock
        pass
    assert not (out / LOCK_NAME).exists()


def test_lock_is_exclusive_within_a_process_and_released(tmp_path):
    with folder_lock(tmp_path / "f"):
        with pytest.raises(SynthcareError, match="being written"), folder_lock(tmp_path / "f"):
            pass
    with folder_lock(tmp_path / "f"):
        pass


# 11. an interrupted train exits 130 after checkpointing; constant pairs are flagged
def test_interrupted_train_exits_130(tmp_path, capsys, monkeypatch):
    class StopAtOnce:
        requested = True

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(train_mod, "_Interrupt", StopAtOnce)
    assert main(["train", "--preset", "denoise2d", *SETS, "--steps", "50", "--out",
                 str(tmp_path / "r")]) == 130
    err = capsys.readouterr().err
    assert "--resume" in err and "Traceback" not in err
    assert (tmp_path / "r" / "last.pt").exists()


def test_constant_training_pairs_warn(tmp_path, capsys):
    for sub in ("low", "GT"):
        (tmp_path / "pairs" / sub).mkdir(parents=True)
        write_tiff(tmp_path / "pairs" / sub / "0000.tif", np.full((64, 64), 5.0), (0.1, 0.1))
    assert main(["train", "--preset", "denoise2d", *SETS, "--steps", "1", "--pairs",
                 str(tmp_path / "pairs"), "--out", str(tmp_path / "r")]) == 0
    assert "carry no signal" in capsys.readouterr().err


# every sub-command with an unwritable output: exit 2, one line, nothing written
def _commands(tmp, model, raw, bad):
    study = tmp / "study.yaml"
    sim = ["simulate", "--preset", "denoise2d", "--n", "1"]
    return {
        "simulate --out": [*sim, "--out", str(bad)],
        "simulate --preview": [*sim, "--preview", str(bad / "p.png")],
        "train --out": ["train", "--preset", "denoise2d", *SETS, "--steps", "1", "--out", str(bad)],
        "predict -o": ["predict", "--model", str(model), str(raw), "-o", str(bad / "o.tif")],
        "predict --report": ["predict", "--model", str(model), str(raw), "-o", str(tmp / "o.tif"),
                             "--report", str(bad / "r.json")],
        "evaluate --json": ["evaluate", "--model", str(model), "--n", "1", "--json", str(bad / "s.json")],
        "demo --out": ["demo", "--out", str(bad)],
        "study --out": ["study", str(study), "--out", str(bad)],
        "calibrate --out": ["calibrate", str(raw), "--out", str(bad / "cam.yaml")],
        "calibrate --plot": ["calibrate", str(raw), "--out", str(tmp / "cam.yaml"), "--plot",
                             str(bad / "c.png")],
        "fit --out": ["fit", str(raw), "--out", str(bad / "fit.yaml")],
        "fit --plot": ["fit", str(raw), "--out", str(tmp / "fit.yaml"), "--plot", str(bad / "f.png")],
        "predict --scale": ["predict", "--model", str(model), str(raw), "-o", str(tmp / "o.tif"),
                            "--scale", str(bad / "s.tif")],
        "export --out zip": ["export", "--model", str(model), "--out", str(bad / "m.zip")],
        "export --out folder": ["export", "--model", str(model), "--out", str(bad / "pkg")],
        "export --out onnx": ["export", "--model", str(model), "--out", str(bad / "m.onnx"),
                              "--format", "onnx"],
    }


@pytest.mark.parametrize("command", list(_commands(*[Path("/x")] * 4)))
def test_every_command_refuses_an_unwritable_output_before_work(tmp_path, capsys, model_dir,
                                                                raw_tiff, command):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    (tmp_path / "study.yaml").write_text("preset: denoise2d\nsweep:\n  camera.photons: [5]\n"
                                         "steps: 1\nn: 1\n")
    argv = _commands(tmp_path, model_dir, raw_tiff, blocker / "sub")[command]
    before = _snapshot(tmp_path)
    assert main(argv) == 2
    err = _one_line_error(capsys)
    assert "a_file" in err and "not a folder" in err
    assert _snapshot(tmp_path) == before
