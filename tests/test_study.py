"""Studies: checked before any work, resumable, and reporting every point."""

import json

import pytest

from restore.cli import main
from restore.study import load_study, run_study
from simulate import ConfigError

SMALL = """preset: denoise2d
sweep:
  camera.photons: [5, 50]
mode: {mode}
steps: 3
n: 1
set:
  shape: [64, 64]
  train.patch: [32, 32]
  train.batch_size: 2
  train.val_every: 3
  train.val_patches: 2
  train.filters: 4
"""


def _write(tmp_path, text, name="study.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("mode", ["shared", "per_point"])
def test_study_runs_reports_and_resumes_without_redoing(tmp_path, mode):
    study = _write(tmp_path, SMALL.format(mode=mode))
    out = tmp_path / "out"
    rows = run_study(study, out, progress=False)
    assert [r["camera.photons"] for r in rows] == [5, 50]
    for r in rows:
        assert r["network_psnr"] > 0 and r["input_psnr"] > 0
        assert r["train_steps"] == 3
    # more photons: a better input
    assert rows[1]["input_psnr"] > rows[0]["input_psnr"]
    for name in ("results.csv", "results.json", "psnr.png", "ssim.png", "nrmse.png",
                 "examples.png", "report.md"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "results.csv").read_text().count("\n") == 3
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}
    assert run_study(study, out, progress=False) == json.loads((out / "results.json").read_text())
    assert stamps == {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}


def test_interrupted_study_resumes_at_the_first_unfinished_point(tmp_path):
    study = _write(tmp_path, SMALL.format(mode="per_point"))
    out = tmp_path / "out"
    run_study(study, out, progress=False)
    first = sorted((out / "points").glob("00_*.json"))[0]
    stamp = first.stat().st_mtime_ns
    second = sorted((out / "points").glob("01_*.json"))[0]
    second.unlink()
    (out / "report.md").unlink()
    rows = run_study(study, out, progress=False)
    assert first.stat().st_mtime_ns == stamp and second.exists() and len(rows) == 2


@pytest.mark.parametrize(("text", "match"), [
    (SMALL.format(mode="shared").replace("camera.photons", "camera.photon"), "camera.photon"),
    (SMALL.format(mode="shared").replace("[5, 50]", "[5, -1]"), "camera.photons=-1"),
    (SMALL.format(mode="shared").replace("denoise2d", "nope"), "unknown preset"),
    (SMALL.format(mode="shared").replace("camera.photons: [5, 50]", "train.lr: [0.1, 0.01]"),
     "per_point"),
    (SMALL.format(mode="shared").replace("steps: 3\n", ""), "budget"),
])
def test_bad_study_fails_before_any_work(tmp_path, text, match):
    study = _write(tmp_path, text)
    with pytest.raises(ConfigError, match=match):
        load_study(study)
    assert main(["study", str(study), "--out", str(tmp_path / "o")]) == 2
    assert not (tmp_path / "o").exists()


def test_another_study_in_the_same_folder_is_refused(tmp_path):
    out = tmp_path / "out"
    run_study(_write(tmp_path, SMALL.format(mode="shared")), out, progress=False)
    other = _write(tmp_path, SMALL.format(mode="shared").replace("[5, 50]", "[5, 60]"), "b.yaml")
    with pytest.raises(ConfigError, match="different study"):
        run_study(other, out, progress=False)
