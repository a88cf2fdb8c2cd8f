"""A trained model where microscopists run models: a bioimage.io model package (format 0.5:
Fiji/deepImageJ, napari, ilastik, QuPath, ``bioimageio.core``), or the network alone as
TorchScript or ONNX.

Every exported network is :class:`restore.unet.PaddedUNet`: it takes any image size (padding
to the U-Net's multiple inside, as :mod:`restore.predict` does) and works in normalised units:
the input mapped so that its 1st and 99.8th percentiles become 0 and 1 (the training
normalisation; the bioimage.io package declares it as ``scale_range`` preprocessing), the
output in the same units. bioimage.io has no step that undoes a per-image ``scale_range``, so
the package's output stays normalised, as CSBDeep's exports do; ``synthcare predict`` maps it
back to the input's units.

What the network takes is the task's own input: the image as acquired (denoise, n2n,
deconvolve), the stack already interpolated along z onto the fine planes (upsample), or one
XZ/YZ slice of that stack (isotropic, a 2D network).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import tifffile
import torch
import yaml

from simulate import SynthcareError, atomic_write
from simulate.dataset import dataset_spacing
from simulate.paths import check_output_file, check_output_folder, make_parent

from .checkpoints import load_model
from .config import RunConfig
from .normalize import PMAX, PMIN, percentile_affine
from .predict import upsample_z
from .prefilter import wiener
from .unet import PaddedUNet, UNet
from .workflows import workflow

FORMATS = ("bioimageio", "torchscript", "onnx")
ONNX_OPSET = 18
CARE_DOI = "10.1038/s41592-018-0216-7"
PROJECT_URL = "https://github.com/synthcare/synthcare"


def exportable(model: UNet) -> PaddedUNet:
    """The trained network as a :class:`PaddedUNet` (same weights, any input size), in eval mode."""
    net = PaddedUNet(**model.cfg.to_dict())
    net.net.load_state_dict(model.state_dict())
    return net.eval()


def save_torchscript(net: PaddedUNet, path: Path) -> Path:
    """The network compiled by TorchScript (any input size) to ``path``."""
    _script(net).save(str(path))
    return path


def _script(net: PaddedUNet):
    """torch.jit.script without its deprecation warning: TorchScript is what the Java
    consumers of bioimage.io packages (deepImageJ, QuPath) run."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return torch.jit.script(net)


def save_onnx(net: PaddedUNet, path: Path) -> Path:
    """The network as ONNX (opset :data:`ONNX_OPSET`; batch and spatial sizes dynamic)."""
    try:
        import onnx  # noqa: F401  (torch.onnx needs it)
    except ImportError:
        raise SynthcareError("ONNX export needs the onnx package: pip install 'synthcare[export]'") from None
    nd = net.net.cfg.ndim
    dyn = {0: torch.export.Dim.DYNAMIC, **{2 + i: torch.export.Dim.DYNAMIC for i in range(nd)}}
    example = torch.zeros((2, net.net.cfg.channels_in, *([2 * net.multiple + 1] * nd)))
    quiet = logging.getLogger("torch.onnx")  # it lists torchvision's operators it skips
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(net, (example,), input_names=["input"], output_names=["output"],
                                        dynamic_shapes=({**dyn},), opset_version=ONNX_OPSET,
                                        dynamo=True, verbose=False)
    finally:
        quiet.setLevel(level)
    program.save(str(path))
    return path


def network_input(run: RunConfig, image: np.ndarray) -> np.ndarray:
    """What the task's network takes for an acquired image (see the module docstring)."""
    wf = workflow(run.task)
    if wf.interpolate_z or wf.slices:
        image = upsample_z(image, "ZYX", run.sampling.z_factor)
    if wf.slices:  # the middle XZ slice: rows are z
        image = image[:, image.shape[1] // 2, :]
    if run.target.wiener is not None:
        image = wiener(run, image)
    return np.ascontiguousarray(image, np.float32)


def network_spacing(run: RunConfig) -> tuple[float, ...]:
    """Voxel size (µm) of the network's input and output axes."""
    if workflow(run.task).slices:
        return (run.sampling.pixel, run.sampling.pixel)
    return dataset_spacing(run.sim)["GT"]


def run_network(net: PaddedUNet, x: np.ndarray) -> np.ndarray:
    """The exported pipeline in numpy: percentile normalisation, then the network; (C, ...)."""
    aff = percentile_affine(x)
    with torch.no_grad():
        return net(torch.from_numpy(aff(x).astype(np.float32))[None, None])[0].numpy()


def export_model(run_dir: str | Path, out: str | Path, fmt: str = "bioimageio", *,
                 author: str = "synthcare user", progress: bool = True) -> Path:
    """Export the model of a run folder: ``bioimageio`` (a package: ``out`` ending in .zip, else
    a folder), ``torchscript`` or ``onnx`` (one file). Nothing is left at ``out`` if it fails."""
    if fmt not in FORMATS:
        raise SynthcareError(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    out = Path(out)
    folder_out = fmt == "bioimageio" and out.suffix.lower() != ".zip"
    if folder_out:
        check_output_folder(out, "--out")
        if out.exists() and any(out.iterdir()):
            raise SynthcareError(f"--out {out} is not an empty folder: give a new folder or a "
                                 ".zip name")
    else:
        check_output_file(out, "--out")
    model, run, _ = load_model(run_dir)
    net = exportable(model)
    if fmt == "torchscript":
        atomic_write(make_parent(out), lambda p: save_torchscript(net, p))
    elif fmt == "onnx":
        atomic_write(make_parent(out), lambda p: save_onnx(net, p))
    else:
        _bioimageio(Path(run_dir), net, run, out, folder_out, author, progress)
    return out


def _bioimageio(run_dir: Path, net: PaddedUNet, run: RunConfig, out: Path, folder_out: bool,
                author: str, progress: bool) -> None:
    try:
        from bioimageio.spec import save_bioimageio_package, save_bioimageio_package_as_folder
    except ImportError:
        raise SynthcareError("bioimage.io export needs bioimageio.spec: pip install "
                             "'synthcare[export]'") from None
    from .data import TEST_OFFSET
    from .evaluate import cases, evaluate_model, figure

    result = evaluate_model(net.net, run.sim, run.seed, n=2, progress=progress, keep=True)
    images = result.pop("images")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        x = _test_crop(network_input(run, cases(run.sim, run.seed + TEST_OFFSET, 1)[0].input),
                       net.multiple)
        y = run_network(net, x)
        np.save(tmp / "test_input.npy", x[None, None])
        np.save(tmp / "test_output.npy", y[None])
        # sample tensors: the same images as TIFFs, for people and tools to look at
        tifffile.imwrite(tmp / "sample_input.tif", x.astype(np.float32))
        tifffile.imwrite(tmp / "sample_output.tif", np.squeeze(y, 0) if len(y) == 1 else y)
        figure(images, result, tmp / "cover.png", title=f"synthcare {run.task} model (held-out images)")
        torch.save(net.state_dict(), tmp / "weights.pt")
        save_torchscript(net, tmp / "weights_torchscript.pt")
        save_onnx(net, tmp / "weights.onnx")
        (tmp / "README.md").write_text(_readme(run_dir, run, result))
        (tmp / "run.yaml").write_text(yaml.safe_dump(run.model_dump(mode="json"), sort_keys=False))
        descr = _description(tmp, net, run, author)
        make_parent(out)
        if folder_out:
            staged = out.parent / f".{out.name}.partial"
            shutil.rmtree(staged, ignore_errors=True)
            try:
                save_bioimageio_package_as_folder(descr, output_path=staged)
                if out.exists():
                    out.rmdir()
                staged.rename(out)
            finally:
                shutil.rmtree(staged, ignore_errors=True)
        else:
            atomic_write(out, lambda p: save_bioimageio_package(descr, output_path=p))


def _test_crop(x: np.ndarray, multiple: int, size: int = 128) -> np.ndarray:
    """A corner of the test image at most ``size`` per axis and a multiple of the network's
    multiple (the sizes the package declares)."""
    sl = tuple(slice(0, max(multiple, min(n, size) // multiple * multiple)) for n in x.shape)
    return np.ascontiguousarray(x[sl])


def _description(tmp: Path, net: PaddedUNet, run: RunConfig, author: str):
    from bioimageio.spec.model import v0_5 as b

    cfg = net.net.cfg
    names = ["z", "y", "x"][3 - cfg.ndim:]
    spacing = network_spacing(run)
    m = net.multiple
    in_axes = [b.BatchAxis(), b.ChannelAxis(channel_names=[b.Identifier("raw")])]
    out_axes = [b.BatchAxis(), b.ChannelAxis(channel_names=[b.Identifier("restored")] + (
        [b.Identifier("laplace_scale")] if cfg.probabilistic else []))]
    for name, s in zip(names, spacing, strict=True):
        ax = b.AxisId(name)
        # bioimage.io sizes an output axis as n · s_in / s_out in floating point, which is not
        # n for every n (48 · 0.1 / 0.1 = 48.00000000000001): a voxel size that is a multiple
        # of 2⁻²⁰ µm (1 pm) makes it exact
        s = round(float(s) * 2**20) / 2**20
        in_axes.append(b.SpaceInputAxis(id=ax, size=b.ParameterizedSize(min=m, step=m),
                                        scale=s, unit="micrometer"))
        out_axes.append(b.SpaceOutputAxis(id=ax, size=b.SizeReference(
            tensor_id=b.TensorId("raw"), axis_id=ax), scale=s, unit="micrometer"))
    pre = [b.EnsureDtypeDescr(kwargs=b.EnsureDtypeKwargs(dtype="float32")),
           b.ScaleRangeDescr(kwargs=b.ScaleRangeKwargs(
               axes=[b.AxisId(n) for n in names], min_percentile=PMIN, max_percentile=PMAX))]
    inputs = [b.InputTensorDescr(
        id=b.TensorId("raw"), axes=in_axes, test_tensor=b.FileDescr(source=tmp / "test_input.npy"),
        sample_tensor=b.FileDescr(source=tmp / "sample_input.tif"),
        description="the image as the task's network takes it, in camera units (scale_range: "
                    f"p{PMIN:g} → 0, p{PMAX:g} → 1)", preprocessing=pre)]
    outputs = [b.OutputTensorDescr(
        id=b.TensorId("restored"), axes=out_axes, test_tensor=b.FileDescr(source=tmp / "test_output.npy"),
        sample_tensor=b.FileDescr(source=tmp / "sample_output.tif"),
        description=("restored image; channel 2: its per-pixel Laplace scale" if cfg.probabilistic
                     else "restored image") + f", in the input's normalised units (p{PMIN:g} → 0, "
                    f"p{PMAX:g} → 1)")]
    version = b.Version(torch.__version__.split("+")[0])
    arch = b.ArchitectureFromFileDescr(source=Path(__file__).with_name("unet.py"),
                                       callable=b.Identifier("PaddedUNet"), kwargs=cfg.to_dict())
    weights = b.WeightsDescr(
        pytorch_state_dict=b.PytorchStateDictWeightsDescr(source=tmp / "weights.pt",
                                                          architecture=arch, pytorch_version=version),
        torchscript=b.TorchscriptWeightsDescr(source=tmp / "weights_torchscript.pt",
                                              pytorch_version=version, parent="pytorch_state_dict"),
        onnx=b.OnnxWeightsDescr(source=tmp / "weights.onnx", opset_version=ONNX_OPSET,
                                parent="pytorch_state_dict"))
    dims = f"{cfg.ndim}D"
    return b.ModelDescr(
        name=f"synthcare {run.task} {dims}",
        description=f"CARE network ({dims} U-Net) for {run.task} trained by synthcare on simulated "
                    f"fluorescence microscopy ({run.optics.psf}, NA {run.optics.na}, pixel "
                    f"{run.sampling.pixel} µm)",
        authors=[b.Author(name=author)],
        cite=[b.CiteEntry(text="Weigert et al., Content-aware image restoration: pushing the limits "
                               "of fluorescence microscopy, Nature Methods 15, 1090 (2018)",
                          doi=b.Doi(CARE_DOI)),
              b.CiteEntry(text="synthcare: simulated training data for CARE", url=b.HttpUrl(PROJECT_URL))],
        license=b.LicenseId("BSD-3-Clause"),
        documentation=b.FileDescr(source=tmp / "README.md"),
        covers=[b.FileDescr(source=tmp / "cover.png")],
        tags=["care", workflow(run.task).tag,
              "fluorescence-light-microscopy", "synthcare", "pytorch", dims.lower()],
        inputs=inputs, outputs=outputs, weights=weights,
        attachments=[b.FileDescr(source=tmp / "run.yaml")],
    )


def _readme(run_dir: Path, run: RunConfig, result: dict) -> str:
    """What the model was trained on and how it scored, for the package's documentation."""
    from .evaluate import table
    from .train import read_log

    log = read_log(run_dir) if (run_dir / "log.csv").exists() else []
    steps = int(log[-1]["step"]) if log else "unknown"
    sim = yaml.safe_dump(run.sim.model_dump(mode="json"), sort_keys=False)
    scale_note = ("; the second channel is the per-pixel Laplace scale (uncertainty)"
                  if run.train.loss == "laplace" else "")
    train = yaml.safe_dump(run.train.model_dump(mode="json"), sort_keys=False)
    return f"""# synthcare {run.task} model

A CARE network trained by [synthcare]({PROJECT_URL}) on pairs simulated on the fly by a physical
forward model of the microscope (sample, optics, sampling, camera); no acquired training pairs.

## Input and output
- Input `raw`: {workflow(run.task).name} network input in camera units (see `synthcare predict`
  for the steps around the network: z interpolation for `upsample`, XZ/YZ slices for
  `isotropic`, the Wiener filter with the PSF for `deconvolve` with `target.wiener`),
  normalised by its {PMIN:g}th and {PMAX:g}th percentiles (`scale_range` preprocessing).
- Output `restored`: the restoration in the same normalised units{scale_note}.
  Multiply by (p{PMAX:g} − p{PMIN:g}) of the input and add p{PMIN:g} for camera units.
- Any size works (the network pads to multiples of {2 ** run.train.depth} inside); large images
  are best restored with `synthcare predict`, which tiles with overlap.

## Validation
Held-out scores on 2 simulated images of the training configuration, never seen in training
(PSNR and SSIM against the noise-free image, after the CARE paper's affine fit):
{table(result)}

Best classical baseline: {result.get('best_baseline')} (tuned on validation images).

## Training
{steps} optimiser steps.

```yaml
{train}```

## Simulation (the whole configuration the pairs were drawn from)
```yaml
{sim}```
"""
