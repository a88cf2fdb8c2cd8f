"""Export: TorchScript and ONNX equal the PyTorch network on odd sizes (through onnxruntime), and
bioimage.io packages pass bioimageio.core's own test of a model package."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from restore.cli import main
from restore.config import load_run
from restore.export import export_model, exportable, save_onnx, save_torchscript
from restore.train import train
from restore.unet import UNet, UNetConfig

TINY = ["shape=[64,64]", "train.patch=[32,32]", "train.batch_size=4", "train.filters=8",
        "train.val_patches=4", "train.workers=0", "train.patches_per_image=4"]


def _run(*extra):
    return load_run("denoise2d", None, [*TINY, *extra])

ort = pytest.importorskip("onnxruntime")


@pytest.mark.parametrize(("cfg", "shapes"), [
    (UNetConfig(ndim=2, filters=4, depth=2), [(1, 1, 37, 41), (2, 1, 64, 30)]),
    (UNetConfig(ndim=3, filters=4, depth=1, probabilistic=True), [(1, 1, 7, 13, 11), (1, 1, 2, 9, 16)]),
])
def test_torchscript_and_onnx_equal_pytorch_on_odd_sizes(tmp_path, cfg, shapes):
    torch.manual_seed(0)
    net = exportable(UNet(cfg))
    script = torch.jit.load(str(save_torchscript(net, tmp_path / "m.pt")))
    session = ort.InferenceSession(str(save_onnx(net, tmp_path / "m.onnx")),
                                   providers=["CPUExecutionProvider"])
    for shape in shapes:
        x = np.random.default_rng(1).normal(size=shape).astype(np.float32)
        with torch.no_grad():
            ref = net(torch.from_numpy(x)).numpy()
            ts = script(torch.from_numpy(x)).numpy()
        onnx_out = session.run(None, {"input": x})[0]
        c = cfg.channels_out * (2 if cfg.probabilistic else 1)
        assert ref.shape == (shape[0], c, *shape[2:])
        span = float(np.ptp(ref))
        assert np.abs(ts - ref).max() <= 1e-4 * span
        assert onnx_out.shape == ref.shape and np.abs(onnx_out - ref).max() <= 1e-4 * span


def test_padded_network_equals_the_plain_one_on_valid_sizes():
    torch.manual_seed(0)
    model = UNet(UNetConfig(ndim=2, filters=4, depth=2)).eval()
    x = torch.randn(1, 1, 32, 48)
    with torch.no_grad():
        assert torch.equal(exportable(model)(x), model(x))


@pytest.mark.parametrize("extra", [
    [],
    pytest.param(["shape=[8,48,48]", "train.patch=[8,32,32]", "task=denoise", "train.loss=laplace",
                  "train.depth=1"], id="3d-laplace"),
])
def test_bioimageio_package_passes_bioimageio_core(tmp_path, extra):
    core = pytest.importorskip("bioimageio.core")
    run = _run(*extra, "train.steps=2") if not extra else _3d_run(extra)
    train(run, tmp_path / "run", progress=False)
    out = export_model(tmp_path / "run", tmp_path / "model.zip", progress=False)
    summary = core.test_model(str(out))
    assert summary.status == "passed", summary.format()
    import zipfile

    names = set(zipfile.ZipFile(out).namelist())
    assert {"rdf.yaml", "weights.pt", "weights_torchscript.pt", "weights.onnx", "cover.png",
            "README.md", "test_input.npy", "test_output.npy", "sample_input.tif",
            "sample_output.tif"} <= names
    rdf = yaml.safe_load(zipfile.ZipFile(out).read("rdf.yaml"))
    assert rdf["inputs"][0]["sample_tensor"]["source"] == "sample_input.tif"
    assert rdf["outputs"][0]["sample_tensor"]["source"] == "sample_output.tif"


def _3d_run(extra):
    return load_run("denoise3d", None, ["train.batch_size=2", "train.filters=4", "train.val_patches=2",
                                         "train.workers=0", "train.patches_per_image=2",
                                         "train.steps=2", *extra])


def test_export_refusals_leave_nothing_behind(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["export", "--model", str(tmp_path / "empty"), "--out", str(tmp_path / "m.zip")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "m.zip").exists()
    train(_run("train.steps=1"), tmp_path / "run", progress=False)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x.txt").write_text("mine")
    assert main(["export", "--model", str(tmp_path / "run"), "--out", str(tmp_path / "full")]) == 2
    assert "not an empty folder" in capsys.readouterr().err
    assert main(["export", "--model", str(tmp_path / "run"), "--out", str(tmp_path / "dir"),
                 "--format", "torchscript"]) == 0
    (tmp_path / "afile").write_text("a file, not a folder")
    assert main(["export", "--model", str(tmp_path / "run"), "--out",
                 str(tmp_path / "afile" / "m.pt"), "--format", "torchscript"]) == 2
    assert "cannot write --out" in capsys.readouterr().err
    assert (tmp_path / "afile").read_text() == "a file, not a folder"


def test_version_flag(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.startswith("synthcare ")


def test_predict_writes_the_laplace_scale_and_flags_a_foreign_voxel_size(tmp_path, capsys):
    from simulate import read_tiff, write_tiff

    train(_run("train.steps=2", "train.loss=laplace"), tmp_path / "run", progress=False)
    run = load_run(None, tmp_path / "run" / "run.yaml", [])
    img = np.random.default_rng(0).poisson(5, (40, 50)).astype(np.float32) + 100
    write_tiff(tmp_path / "same.tif", img, (run.sampling.pixel,) * 2)
    write_tiff(tmp_path / "other.tif", img, (run.sampling.pixel * 1.5,) * 2)
    args = ["predict", "--model", str(tmp_path / "run"), "-o", str(tmp_path / "out.tif")]
    assert main([*args, str(tmp_path / "same.tif"), "--scale", str(tmp_path / "s.tif")]) == 0
    assert "voxel size" not in capsys.readouterr().err
    scale, meta = read_tiff(tmp_path / "s.tif")
    assert scale.shape == img.shape and np.all(scale > 0)
    assert meta["spacing"] == pytest.approx((run.sampling.pixel,) * 2)
    assert main([*args, str(tmp_path / "other.tif")]) == 0
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "voxel size" in err and "sampling.pixel=0.15" in err
    assert main([*args, str(tmp_path / "same.tif"), "--voxel-size", "0,1"]) == 2
    assert "--voxel-size" in capsys.readouterr().err
    train(_run("train.steps=1"), tmp_path / "plain", progress=False)
    assert main(["predict", "--model", str(tmp_path / "plain"), str(tmp_path / "same.tif"), "-o",
                 str(tmp_path / "o2.tif"), "--scale", str(tmp_path / "s2.tif")]) == 2
    assert "probabilistic" in capsys.readouterr().err and not (tmp_path / "o2.tif").exists()


def test_train_reads_csbdeep_training_data(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = rng.random((6, 1, 32, 32)).astype(np.float32)
    x = y + rng.normal(0, 0.1, y.shape).astype(np.float32)
    np.savez(tmp_path / "data.npz", X=x, Y=y, axes="SCYX")
    sets = ["--set", "train.patch=[32,32]", "--set", "train.batch_size=2", "--set", "train.filters=4",
            "--set", "train.val_patches=2", "--set", "train.workers=0"]
    assert main(["train", "--preset", "denoise2d", *sets, "--steps", "2", "--pairs",
                 str(tmp_path / "data.npz"), "--out", str(tmp_path / "run")]) == 0
    assert "finished: 2 steps" in capsys.readouterr().out
    np.savez(tmp_path / "bad.npz", X=x, Y=y[:, :, :16], axes="SCYX")
    assert main(["train", "--preset", "denoise2d", *sets, "--steps", "2", "--pairs",
                 str(tmp_path / "bad.npz"), "--out", str(tmp_path / "run2")]) == 2
    assert "differ in shape" in capsys.readouterr().err and not (tmp_path / "run2").exists()
    np.savez(tmp_path / "axes.npz", X=x, Y=y, axes="CYX")
    assert main(["train", "--preset", "denoise2d", *sets, "--pairs", str(tmp_path / "axes.npz"),
                 "--out", str(tmp_path / "run3")]) == 2
    assert "axes 'CYX'" in capsys.readouterr().err
