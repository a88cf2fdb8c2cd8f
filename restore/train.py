"""The training loop: one readable function.

AdamW at ``train.lr``, learning rate reduced on plateau of the validation loss, stop after
``train.steps`` steps or ``train.minutes`` minutes. Every ``train.val_every`` steps: loss and
PSNR on a fixed validation set, a row in ``log.csv``, checkpoints ``last.pt`` and (if the
validation loss improved) ``best.pt``, each written atomically with the full run config. Ctrl-C
finishes the current step, writes ``last.pt`` and stops; ``resume=True`` restores model,
optimiser, scheduler, step and timers and continues the same batch stream, so an interrupted
run reproduces the uninterrupted one.
"""

from __future__ import annotations

import csv
import functools
import itertools
import math
import os
import signal
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from simulate import SimConfig, SynthcareError, atomic_write, ensure_writable, versions
from simulate.paths import check_output_folder, folder_lock

from . import losses
from .config import RunConfig
from .data import (
    BatchStream,
    FolderPairs,
    MixedBatches,
    SimulatedBatches,
    model_ndim,
    pair_files,
    validation_set,
)
from .device_batches import DeviceBatches, default_workers
from .unet import UNet, UNetConfig

CHECKPOINTS = ("best.pt", "last.pt")
LOG_FIELDS = ("step", "seconds", "train_loss", "val_loss", "val_psnr", "lr", "patches_per_s")


def device_pairs(sims: list[SimConfig]) -> bool:
    """True if the pairs are simulated on the GPU (``device: cuda``) and so reach training as
    device tensors; a mixture must not mix devices."""
    devices = {s.device for s in sims}
    if len(devices) > 1:
        raise SynthcareError("every configuration of a mixture must simulate on the same device")
    return devices == {"cuda"}


def pick_device(name: str) -> torch.device:
    """'auto' → CUDA if available, else CPU; 'cuda' without a GPU is a clear error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise SynthcareError("train.device = cuda, but torch sees no CUDA device")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def memory_format_for(ndim: int, cuda: bool) -> torch.memory_format:
    """Tensor layout for training. bench_train.py, 2 cores: channels-last is 1.3x faster for 3D
    but slower for 2D on the CPU (oneDNN's NCHW 5x5 kernels win there); on CUDA it feeds the
    tensor cores."""
    if ndim == 3:
        return torch.channels_last_3d
    return torch.channels_last if cuda else torch.contiguous_format


def build_model(run: RunConfig, ndim: int | None = None) -> UNet:
    """The U-Net a run describes."""
    t = run.train
    cfg = UNetConfig(ndim=ndim or model_ndim(run), depth=t.depth, filters=t.filters, kernel=t.kernel,
                     batch_norm=t.batch_norm, residual=t.residual, probabilistic=t.loss == "laplace")
    return UNet(cfg)


def psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR (dB) in normalised units, data range 1 (the validation set's scale)."""
    mse = float((pred - target).square().mean())
    return 10 * math.log10(1.0 / max(mse, 1e-12))


def save_checkpoint(path: Path, state: dict) -> None:
    """Write a checkpoint atomically (temporary file + rename)."""
    atomic_write(path, lambda tmp: torch.save(state, tmp))


def _first_sentence(exc: BaseException) -> str:
    """The first sentence of an exception's message (torch's run to several lines)."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return text.split(". ")[0].rstrip(".")[:160]


def read_checkpoint(path: Path) -> dict:
    """One checkpoint file, or one line saying it is corrupt (truncated, overwritten) or not a
    synthcare checkpoint."""
    try:
        ck = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises RuntimeError, EOFError, pickle errors, …
        why = _first_sentence(exc)
        raise SynthcareError(f"{path} is corrupt or not a checkpoint ({why})") from None
    if not isinstance(ck, dict) or not {"model", "unet", "run"} <= ck.keys():
        raise SynthcareError(f"{path} is not a synthcare checkpoint (it lacks the model, unet and "
                             "run entries)")
    return ck


def load_checkpoint(run_dir: str | Path, name: str | None = None) -> dict:
    """``best.pt`` if it exists and is readable, else ``last.pt`` (with a one-line warning on
    stderr when ``best.pt`` is unreadable), or the named one; loaded on the CPU."""
    run_dir = Path(run_dir)
    names = [n for n in ([name] if name else CHECKPOINTS) if (run_dir / n).is_file()]
    if not names:
        raise SynthcareError(f"no checkpoint ({name or ' or '.join(CHECKPOINTS)}) in {run_dir}: "
                             "train a model first")
    errors = []
    for n in names:
        try:
            ck = read_checkpoint(run_dir / n)
        except SynthcareError as exc:
            errors.append(str(exc))
            continue
        if errors:
            print(f"warning: {errors[0]}; using {n} instead", file=sys.stderr)
        return ck
    raise SynthcareError(" and ".join(errors) + ": retrain, or restore the run folder from a backup")


def load_model(run_dir: str | Path) -> tuple[UNet, RunConfig, dict]:
    """The trained model (eval mode, CPU), its run config and the checkpoint's metadata."""
    ck = load_checkpoint(run_dir)
    try:
        model = UNet(UNetConfig(**ck["unet"]))
        model.load_state_dict(ck["model"])
        run = RunConfig.model_validate(ck["run"])
    except (TypeError, RuntimeError, ValueError) as exc:
        why = _first_sentence(exc)
        raise SynthcareError(f"the checkpoint in {run_dir} does not hold a model this version "
                             f"can load ({why})") from None
    model.eval()
    return model, run, ck


class _Interrupt:
    """First Ctrl-C: finish the step, checkpoint and stop. Second: stop at once."""

    def __init__(self):
        self.requested = False
        self.previous = None

    def __enter__(self):
        def handler(signum, frame):
            if self.requested:
                raise KeyboardInterrupt
            self.requested = True

        try:
            self.previous = signal.signal(signal.SIGINT, handler)
        except ValueError:  # not the main thread: leave signals alone
            self.previous = None
        return self

    def __exit__(self, *exc):
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def train(run: RunConfig, out: str | Path, *, pairs: str | Path | None = None, resume: bool = False,
          progress: bool = True, mixture: list[SimConfig] | None = None) -> dict:
    """Train the network a run describes into the folder ``out``; returns a summary dict.

    ``pairs`` trains on a folder of real low/GT TIFF pairs instead of simulated ones;
    ``mixture`` on simulated pairs drawn in turn from several configurations (one network for a
    whole study range: batch ``b`` comes from configuration ``b mod len(mixture)``).
    """
    out = check_output_folder(out, "--out")
    _refuse_trained(out, resume)
    t = run.train
    device = pick_device(t.device)
    patch = run.patch

    # data: a batch function (pure in the batch number) and a fixed validation set
    if pairs is not None:
        files = pair_files(pairs)
        n_val = max(1, len(files) // 10) if len(files) > 1 else 0
        train_files, val_files = files[: len(files) - n_val], files[len(files) - n_val:] or files
        source = FolderPairs(pairs, patch=patch, seed=run.seed, files=train_files,
                             patches_per_image=t.patches_per_image, threshold=t.foreground,
                             augment=t.augment)
        ndim = source.ndim
        vsrc = FolderPairs(pairs, patch=patch, seed=run.seed + 1, files=val_files, augment=False,
                           threshold=t.foreground)
        val_x, val_y = vsrc.batch(0, t.val_patches)
        make_batch = functools.partial(source.batch, batch_size=t.batch_size)
        gpu_pairs = False
    else:
        sims = mixture or [run.sim]
        ndim = model_ndim(run)
        if any(model_ndim(s) != ndim for s in sims):
            raise SynthcareError("every configuration of a mixture must give the network the same "
                                 "number of dimensions")
        # a GPU simulator hands torch tensors on the device (DeviceBatches); the CPU one numpy
        # arrays that a DataLoader turns into tensors
        gpu_pairs = device_pairs(sims)
        kw = dict(seed=run.seed, batch_size=t.batch_size, patch=patch,
                  patches_per_image=t.patches_per_image, jitter=t.jitter, threshold=t.foreground,
                  augment=t.augment)
        if gpu_pairs:  # geometry drawn ahead by worker processes, the next chunk by a thread
            gw = t.workers if t.workers is not None else default_workers()
            makers = [DeviceBatches(s, workers=gw, prefetch=True, **kw) for s in sims]
        else:
            makers = [SimulatedBatches(s, **kw) for s in sims]
        make_batch = makers[0] if len(makers) == 1 else MixedBatches(makers)
        vals = [validation_set(s, seed=run.seed, patch=patch,
                               n_patches=max(1, t.val_patches // len(sims))) for s in sims]
        val_x, val_y = (np.concatenate(a) for a in zip(*vals, strict=True))
    if _no_signal(val_y):
        print("warning: the training targets carry no signal (every validation patch is constant): "
              "check the sample settings and camera.photons (or the pairs)", file=sys.stderr)
    if len(patch) != ndim:
        raise SynthcareError(f"train.patch {list(patch)} must have {ndim} entries for this task")

    torch.manual_seed(t.seed)
    model = build_model(run, ndim).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=t.lr_factor, patience=t.patience,
                                                       min_lr=t.min_lr)
    loss_fn = losses.get(t.loss)
    prob = model.cfg.probabilistic
    step, best, elapsed = 0, math.inf, 0.0
    with folder_lock(out, "training"):
        _refuse_trained(out, resume)  # again under the lock: another writer may have finished
        ensure_writable(out)
        if resume:
            ck = load_checkpoint(out, "last.pt")
            saved = RunConfig.model_validate(ck["run"]).model_dump(mode="json")  # newer defaults filled
            if _without_budget(saved) != _without_budget(run.model_dump(mode="json")):
                raise SynthcareError(f"--resume: {out} was trained with another configuration "
                                     "(only train.steps and train.minutes may change)")
            model.load_state_dict(ck["model"])
            opt.load_state_dict(ck["optimizer"])
            sched.load_state_dict(ck["scheduler"])
            step, best, elapsed = ck["step"], ck["best_val"], ck["seconds"]
        atomic_write(out / "run.yaml", lambda p: run.to_yaml(p))

        cuda = device.type == "cuda"
        bf16 = t.bf16 if t.bf16 is not None else cuda
        autocast = torch.autocast(device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
        memory_format = memory_format_for(ndim, cuda)
        model = model.to(memory_format=memory_format)
        val_x_t, val_y_t = torch.from_numpy(val_x).to(device), torch.from_numpy(val_y).to(device)
        # bench_train.py, 2 cores: in-process simulation waits 2-3 % of step time, a worker process
        # 4-12 % (it competes with training for the same cores)
        workers = t.workers if t.workers is not None else 0
        # spawn, not fork: the simulator's OpenMP threads make fork() unsafe in the parent
        if gpu_pairs:
            loader = (make_batch(b) for b in itertools.count(step))  # already tensors on the device
        else:
            loader = torch.utils.data.DataLoader(BatchStream(make_batch, start=step), batch_size=None,
                                                 num_workers=workers, pin_memory=cuda,
                                                 multiprocessing_context="spawn" if workers else None,
                                                 prefetch_factor=2 if workers else None)
        writer = _tensorboard(out)
        log_path = out / "log.csv"
        if not resume or not log_path.exists():
            with open(log_path, "w", newline="") as f:
                csv.writer(f).writerow(LOG_FIELDS)

        def checkpoint(name: str) -> None:
            save_checkpoint(out / name, {
                "model": model.state_dict(), "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(), "step": step, "best_val": best, "seconds": elapsed,
                "unet": model.cfg.to_dict(), "run": run.model_dump(mode="json"),
                "pairs": str(pairs) if pairs is not None else None, "versions": versions()})

        def validate() -> tuple[float, float]:
            model.eval()
            with torch.no_grad(), autocast:
                pred = model(val_x_t.to(memory_format=memory_format)).float()
            model.train()
            return float(loss_fn(pred, val_y_t)), psnr(losses.mean_of(pred, prob), val_y_t)

        total = t.steps if t.steps is not None else None
        bar = tqdm(total=total, initial=step, desc="train", unit="step", disable=not progress,
                   dynamic_ncols=True)
        window, window_steps, data_wait, logged_at = 0.0, 0, 0.0, elapsed
        val_loss, val_psnr = math.nan, math.nan
        t_mark = time.perf_counter()
        status = "finished"
        model.train()
        with _Interrupt() as interrupt:
            batches = iter(loader)
            while True:
                if (t.steps is not None and step >= t.steps) or (
                        t.minutes is not None and elapsed >= 60 * t.minutes):
                    break
                if interrupt.requested:
                    status = "interrupted"
                    break
                t0 = time.perf_counter()
                x, y = next(batches)
                data_wait += time.perf_counter() - t0
                x = x.to(device, non_blocking=True).to(memory_format=memory_format)
                y = y.to(device, non_blocking=True)
                with autocast:
                    pred = model(x)
                loss = loss_fn(pred.float(), y)
                if t.schedule == "cosine":
                    for group in opt.param_groups:
                        group["lr"] = cosine_lr(t, step, elapsed)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                step += 1
                window = window + loss.detach()  # no .item() per step: the GPU never waits for the host
                window_steps += 1
                now = time.perf_counter()
                elapsed += now - t_mark
                t_mark = now
                bar.update(1)
                last = (t.steps is not None and step >= t.steps) or (
                    t.minutes is not None and elapsed >= 60 * t.minutes)
                if step % t.val_every == 0 or last or interrupt.requested:
                    val_loss, val_psnr = validate()
                    if t.schedule == "plateau":
                        sched.step(val_loss)
                    window = float(window)
                    rate = window_steps * t.batch_size / max(elapsed - logged_at, 1e-9)
                    logged_at = elapsed
                    row = (step, round(elapsed, 3), window / window_steps, val_loss, val_psnr,
                           opt.param_groups[0]["lr"], rate)
                    with open(log_path, "a", newline="") as f:
                        csv.writer(f).writerow(row)
                    if writer is not None:
                        for k, v in zip(LOG_FIELDS[2:], row[2:], strict=True):
                            writer.add_scalar(k, v, step)
                    if val_loss < best:
                        best = val_loss
                        checkpoint("best.pt")
                    checkpoint("last.pt")
                    bar.set_postfix(loss=f"{window / window_steps:.4f}", val_psnr=f"{val_psnr:.2f}",
                                    patches_s=f"{rate:.1f}")
                    window, window_steps = 0.0, 0
                    t_mark = time.perf_counter()  # validation and checkpoints are not training time
        bar.close()
        if gpu_pairs:
            for m in makers:
                m.close()
        if writer is not None:
            writer.close()
        if step == 0 or not (out / "last.pt").exists():
            checkpoint("last.pt")
    return {"status": status, "steps": step, "seconds": elapsed, "best_val_loss": best,
            "val_psnr": val_psnr, "data_wait_s": data_wait, "out": str(out)}


def _refuse_trained(out: Path, resume: bool) -> None:
    """A new run must not replace a trained model; a resumed one needs ``last.pt``."""
    if not resume and any((out / n).exists() for n in CHECKPOINTS):
        raise SynthcareError(f"{out} already holds a trained model: use --resume or another --out")
    if resume and not (out / "last.pt").is_file():
        raise SynthcareError(f"--resume: {out} holds no last.pt to resume from")


def _no_signal(targets: np.ndarray) -> bool:
    """True if every target patch is constant (nothing to learn)."""
    flat = targets.reshape(len(targets), -1)
    return bool(np.all(flat.max(axis=1) - flat.min(axis=1) <= 1e-6 * max(1.0, np.abs(flat).max())))


def cosine_lr(t, step: int, seconds: float) -> float:
    """Cosine decay from ``t.lr`` to ``t.min_lr`` over the budget: progress is the larger of
    step / steps and seconds / (60 · minutes)."""
    progress = max(step / t.steps if t.steps else 0.0,
                   seconds / (60.0 * t.minutes) if t.minutes else 0.0)
    return t.min_lr + 0.5 * (t.lr - t.min_lr) * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def _without_budget(run: dict) -> dict:
    """A run dict without the budget (steps, minutes), which a resumed run may extend, and
    without the devices, which a resumed run may change."""
    train = {k: v for k, v in run["train"].items() if k not in ("steps", "minutes", "device")}
    return {**{k: v for k, v in run.items() if k != "device"}, "train": train}


def _tensorboard(out: Path):
    """A TensorBoard writer if tensorboard is installed, else None."""
    if os.environ.get("SYNTHCARE_NO_TENSORBOARD"):
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:
        return None
    return SummaryWriter(str(out / "tensorboard"))


def read_log(run_dir: str | Path) -> list[dict[str, float]]:
    """The rows of a run's log.csv as dicts of floats."""
    with open(Path(run_dir) / "log.csv") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]

