"""The training loop: setup in small named functions, then one flat loop.

:func:`train` picks the data (:func:`simulated_data` or :func:`folder_data`), builds the model
and :func:`optimiser`, resumes a :class:`Session` if asked, and runs ``_loop``: schedule → step
(:func:`train_step`, which the benchmarks time too) → validate/log/checkpoint → stop
(:func:`budget_spent`, the one stop rule). :func:`ensure_trained` trains unless a run folder
already holds the finished model. Checkpoint files are :mod:`restore.checkpoints`.

AdamW at ``train.lr``, learning rate reduced on plateau of the validation loss (or a cosine
schedule), stop after
``train.steps`` steps or ``train.minutes`` minutes. Every ``train.val_every`` steps: loss and
PSNR on a fixed validation set, a row in ``log.csv``, checkpoints ``last.pt`` and (if the
validation loss improved) ``best.pt``, each written atomically with the full run config. Ctrl-C
finishes the current step, writes ``last.pt`` and stops; ``resume=True`` restores model,
optimiser, scheduler, step and timers and continues the same batch stream, so an interrupted
run reproduces the uninterrupted one.
"""

from __future__ import annotations

import itertools
import math
import signal
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from simulate import SimConfig, SynthcareError, atomic_write, ensure_writable, versions
from simulate.paths import check_output_folder, folder_lock

from . import ddp, losses, refine
from .checkpoints import CHECKPOINTS, load_checkpoint, save_checkpoint
from .config import RunConfig
from .data import BatchStream, model_ndim
from .metrics import psnr_from_mse
from .runlog import RunLog, read_log
from .sources import TrainData, check_data, folder_data, simulated_data
from .unet import UNet, UNetConfig, memory_format_for


def pick_device(name: str) -> torch.device:
    """'auto' → CUDA if available, else CPU; 'cuda' without a GPU is a clear error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise SynthcareError("train.device = cuda, but torch sees no CUDA device")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def build_model(run: RunConfig, ndim: int | None = None) -> UNet:
    """The U-Net a run describes."""
    t = run.train
    cfg = UNetConfig(ndim=ndim or model_ndim(run), depth=t.depth, filters=t.filters, kernel=t.kernel,
                     batch_norm=t.batch_norm, residual=t.residual, probabilistic=t.loss == "laplace")
    return UNet(cfg)


def psnr(pred: torch.Tensor, target: torch.Tensor) -> float:
    """PSNR (dB) in normalised units, data range 1 (the validation set's scale)."""
    return psnr_from_mse(float((pred - target).square().mean()))


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


def optimiser(run: RunConfig, model: UNet) -> tuple[torch.optim.Optimizer, object]:
    """AdamW and the plateau scheduler (stepped only with ``train.schedule = plateau``)."""
    t = run.train
    opt = torch.optim.AdamW(model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
    sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=t.lr_factor, patience=t.patience,
                                                       min_lr=t.min_lr)
    return opt, sched


def budget_spent(t, step: int, seconds: float) -> bool:
    """The stop rule: ``train.steps`` steps or ``train.minutes`` minutes, whichever first."""
    return (t.steps is not None and step >= t.steps) or (
        t.minutes is not None and seconds >= 60 * t.minutes)


def train_step(model: UNet, opt: torch.optim.Optimizer, loss_fn, x: torch.Tensor, y: torch.Tensor,
               *, autocast=None, lr: float | None = None) -> torch.Tensor:
    """One optimiser step on a batch (already on the model's device and in its memory format);
    ``lr`` sets the learning rate first. Returns the loss as a detached tensor: no host sync."""
    with autocast or nullcontext():
        pred = model(x)
    loss = loss_fn(pred.float(), y)
    if lr is not None:
        for group in opt.param_groups:
            group["lr"] = lr
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


@dataclass
class Session:
    """A training run in progress: its model, optimiser and counters, and where it writes."""

    run: RunConfig
    out: Path
    model: UNet
    opt: torch.optim.Optimizer
    sched: object
    device: torch.device
    pairs: str | Path | None = None
    step: int = 0
    best: float = math.inf
    elapsed: float = 0.0  # training seconds (validation and checkpoints not counted)
    group: ddp.Group | None = None  # the torchrun job this rank belongs to (None: one process)
    net: torch.nn.Module | None = None  # what a step trains through (the model, or its DDP)

    def __post_init__(self) -> None:
        t, cuda = self.run.train, self.device.type == "cuda"
        bf16 = t.bf16 if t.bf16 is not None else cuda
        self.autocast = torch.autocast(self.device.type, dtype=torch.bfloat16) if bf16 else nullcontext()
        self.memory_format = memory_format_for(self.model.cfg.ndim)
        self.loss_fn = losses.get(t.loss)

    def resume(self) -> None:
        """Model, optimiser, scheduler and counters from ``last.pt``; only the budget (steps,
        minutes) and the devices may differ from the saved run."""
        ck = load_checkpoint(self.out, "last.pt")
        saved = RunConfig.model_validate(ck["run"]).model_dump(mode="json")  # newer defaults filled
        if _without_budget(saved) != _without_budget(self.run.model_dump(mode="json")):
            raise SynthcareError(f"--resume: {self.out} was trained with another configuration "
                                 "(only train.steps and train.minutes may change)")
        self.model.load_state_dict(ck["model"])
        self.opt.load_state_dict(ck["optimizer"])
        self.sched.load_state_dict(ck["scheduler"])
        self.step, self.best, self.elapsed = ck["step"], ck["best_val"], ck["seconds"]

    def checkpoint(self, name: str) -> None:
        if self.group is not None and not self.group.main:
            return  # rank 0 writes for the group
        save_checkpoint(self.out / name, {
            "model": self.model.state_dict(), "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(), "step": self.step, "best_val": self.best,
            "seconds": self.elapsed, "unet": self.model.cfg.to_dict(),
            "run": self.run.model_dump(mode="json"),
            "pairs": str(self.pairs) if self.pairs is not None else None, "versions": versions()})

    def validate(self, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
        """Validation loss and PSNR (dB) on the fixed set."""
        self.model.eval()
        with torch.no_grad(), self.autocast:
            pred = self.model(x.to(memory_format=self.memory_format)).float()
        self.model.train()
        prob = self.model.cfg.probabilistic
        return float(self.loss_fn(pred, y)), psnr(losses.mean_of(pred, prob), y)

    def batches(self, data: TrainData):
        """The batch stream from this step on: device tensors as they come, or a DataLoader."""
        if data.on_device:
            return (data.make_batch(b) for b in itertools.count(self.step))
        # bench_train.py, 2 cores: in-process simulation waits 2-3 % of step time, a worker
        # process 4-12 % (it competes with training for the same cores); spawn, not fork: the
        # simulator's OpenMP threads make fork() unsafe in the parent
        workers, cuda = self.run.train.workers or 0, self.device.type == "cuda"
        return torch.utils.data.DataLoader(BatchStream(data.make_batch, start=self.step),
                                           batch_size=None, num_workers=workers, pin_memory=cuda,
                                           multiprocessing_context="spawn" if workers else None,
                                           prefetch_factor=2 if workers else None)


def train(run: RunConfig, out: str | Path, *, pairs: str | Path | None = None, resume: bool = False,
          progress: bool = True, mixture: list[SimConfig] | None = None,
          init: str | Path | None = None) -> dict:
    """Train the network a run describes into the folder ``out``; returns a summary dict.

    ``pairs`` trains on a folder of real low/GT TIFF pairs instead of simulated ones;
    ``mixture`` on simulated pairs drawn in turn from several configurations (one network for a
    whole study range: batch ``b`` comes from configuration ``b mod len(mixture)``); ``init``: a
    run folder whose trained weights start the network (fine-tuning; the same architecture).
    A run with ``train.refine.images`` trains in stages (:mod:`restore.refine`).
    """
    if run.train.refine.images and pairs is None and mixture is None:
        return _train_refined(run, out, resume=resume, progress=progress)
    out = check_output_folder(out, "--out")
    _refuse_trained(out, resume)
    g = ddp.group(run.train.device)  # None unless started by torchrun with several processes
    try:
        device = ddp.device_of(g, pick_device(run.train.device))
        data = folder_data(run, pairs) if pairs is not None else simulated_data(run, mixture)
        check_data(run, data)
        data.make_batch = ddp.shard(data.make_batch, g, data.group)
        ddp.own_chunks(data.makers, g, data.group)
        torch.manual_seed(run.train.seed)
        model = build_model(run, data.ndim)
        if init is not None and not resume:
            _load_weights(model, init)
        model = model.to(device)
        opt, sched = optimiser(run, model)
        ddp.barrier(g)  # every rank has checked the folder before rank 0 writes into it
        main = g is None or g.main
        with folder_lock(out, "training") if main else nullcontext():
            _refuse_trained(out, resume)  # again under the lock: another writer may have finished
            if main:
                ensure_writable(out)
            s = Session(run, out, model, opt, sched, device, pairs, group=g)
            if resume:
                s.resume()
            if main:
                atomic_write(out / "run.yaml", lambda p: run.to_yaml(p))
            s.model = s.model.to(memory_format=s.memory_format)
            s.net = ddp.wrap(s.model, g, device)
            try:
                summary = _loop(s, data, RunLog(out, resume) if main else RunLog.silent(),
                                progress and main)
            finally:
                data.close()
    except BaseException:
        ddp.leave(g, failed=True)  # no barrier: the other ranks wait in another collective
        raise
    ddp.leave(g)
    return summary


def _loop(s: Session, data: TrainData, log: RunLog, progress: bool) -> dict:
    """Schedule → step → log/validate/checkpoint → stop, until the budget is spent or Ctrl-C."""
    t = s.run.train
    val_x, val_y = (torch.from_numpy(a).to(s.device) for a in (data.val_x, data.val_y))
    loader = s.batches(data)
    bar = tqdm(total=t.steps, initial=s.step, desc="train", unit="step", disable=not progress,
               dynamic_ncols=True)
    window, window_steps, data_wait, logged_at = 0.0, 0, 0.0, s.elapsed
    val_loss, val_psnr, status = math.nan, math.nan, "finished"
    t_mark = time.perf_counter()
    s.model.train()
    with _Interrupt() as interrupt:
        batches = iter(loader)

        def stop() -> bool:
            """Every rank of a torchrun job agrees: stop on any rank's Ctrl-C or budget, and go on
            with the slowest rank's clock (the budget and the cosine schedule use it)."""
            end, s.elapsed = ddp.agree(budget_spent(t, s.step, s.elapsed) or interrupt.requested,
                                       s.elapsed, s.group, s.device)
            return end

        end = stop()
        while not end:
            t0 = time.perf_counter()
            x, y = next(batches)
            data_wait += time.perf_counter() - t0
            x = x.to(s.device, non_blocking=True).to(memory_format=s.memory_format)
            y = y.to(s.device, non_blocking=True)
            lr = cosine_lr(t, s.step, s.elapsed) if t.schedule == "cosine" else None
            # no .item() per step: the GPU never waits for the host
            window = window + train_step(s.net or s.model, s.opt, s.loss_fn, x, y,
                                         autocast=s.autocast, lr=lr)
            s.step += 1
            window_steps += 1
            now = time.perf_counter()
            s.elapsed += now - t_mark
            t_mark = now
            bar.update(1)
            end = stop()
            if s.step % t.val_every == 0 or end:
                val_loss, val_psnr = s.validate(val_x, val_y)
                rate = window_steps * t.batch_size / max(s.elapsed - logged_at, 1e-9)
                _report(s, log, bar, float(window) / window_steps, val_loss, val_psnr, rate)
                window, window_steps, logged_at = 0.0, 0, s.elapsed
                t_mark = time.perf_counter()  # validation and checkpoints are not training time
    if ddp.anyone(interrupt.requested, s.group, s.device):
        status = "interrupted"  # Ctrl-C here, or on another rank
    bar.close()
    log.close()
    if s.step == 0 or not (s.out / "last.pt").exists():
        s.checkpoint("last.pt")
    return {"status": status, "steps": s.step, "seconds": s.elapsed, "best_val_loss": s.best,
            "val_psnr": val_psnr, "data_wait_s": data_wait, "out": str(s.out)}


def _report(s: Session, log: RunLog, bar, train_loss: float, val_loss: float, val_psnr: float,
            rate: float) -> None:
    """After a validation: scheduler, log row, ``best.pt`` if it improved, ``last.pt``."""
    if s.run.train.schedule == "plateau":
        s.sched.step(val_loss)
    log.write((s.step, round(s.elapsed, 3), train_loss, val_loss, val_psnr,
               s.opt.param_groups[0]["lr"], rate))
    if val_loss < s.best:
        s.best = val_loss
        s.checkpoint("best.pt")
    s.checkpoint("last.pt")
    bar.set_postfix(loss=f"{train_loss:.4f}", val_psnr=f"{val_psnr:.2f}", patches_s=f"{rate:.1f}")


def _load_weights(model: UNet, run_dir: str | Path) -> None:
    """The trained weights of another run (its best checkpoint) into ``model``."""
    ck = load_checkpoint(run_dir)
    if ck["unet"] != model.cfg.to_dict():
        raise SynthcareError(f"cannot start from {run_dir}: its network differs from this run's "
                             "(depth, filters, kernel, loss and dimensionality must match)")
    model.load_state_dict(ck["model"])


def _refuse_trained(out: Path, resume: bool) -> None:
    """A new run must not replace a trained model; a resumed one needs ``last.pt``."""
    if not resume and any((out / n).exists() for n in CHECKPOINTS):
        raise SynthcareError(f"{out} already holds a trained model: use --resume or another --out")
    if resume and not (out / "last.pt").is_file():
        raise SynthcareError(f"--resume: {out} holds no last.pt to resume from")


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


def finished(run_dir: str | Path, run: RunConfig) -> bool:
    """Whether ``run_dir`` holds a checkpoint whose log reached ``run``'s budget (its steps, or
    its minutes within a second)."""
    run_dir = Path(run_dir)
    if not (run_dir / "last.pt").exists() or not (run_dir / "log.csv").exists():
        return False
    log = read_log(run_dir)
    if not log:
        return False
    t = run.train
    return ((t.steps is not None and log[-1]["step"] >= t.steps)
            or (t.minutes is not None and log[-1]["seconds"] >= 60 * t.minutes - 1))


def ensure_trained(run: RunConfig, run_dir: str | Path, *, progress: bool = True,
                   mixture: list[RunConfig] | None = None) -> dict | None:
    """Train ``run`` into ``run_dir`` unless it is :func:`finished` there, resuming a checkpoint
    an interrupted run left; returns :func:`train`'s summary, or None when the model was reused."""
    run_dir = Path(run_dir)
    if finished(run_dir, run):
        return None
    return train(run, run_dir, progress=progress, resume=(run_dir / "last.pt").exists(),
                 mixture=mixture)


def _train_refined(run: RunConfig, out: str | Path, *, resume: bool = False,
                  progress: bool = True) -> dict:
    """Train ``run`` in stages (:mod:`restore.refine`) into ``out``; returns the summary of
    the last stage trained, with ``steps`` and ``seconds`` summed over the stages so far."""
    out = check_output_folder(out, "--out").resolve()  # stage configs name their images absolutely
    images = refine.read_refine_images(run)
    stages = refine.stage_runs(run, out)
    if not resume:
        for folder, _ in stages:
            _refuse_trained(folder, resume=False)
    out.mkdir(parents=True, exist_ok=True)
    (out / refine.STAGES).mkdir(exist_ok=True)
    atomic_write(out / refine.STAGES / "refine.yaml", lambda p: run.to_yaml(p))
    device = str(pick_device(run.train.device))
    summary = {"status": "finished", "best_val_loss": float("nan"), "out": str(out)}
    for k, (folder, cfg) in enumerate(stages):
        if k:
            refine.restore_images(stages[k - 1][0], images, refine.restored_folder(out, k),
                                  (run.sampling.pixel, run.sampling.pixel), device)
        if finished(folder, cfg):
            continue
        if progress:
            print(f"refine: stage {k} of {len(stages) - 1} "
                  f"({'library' if k == 0 else f'{len(images)} restored image(s) + library'})")
        again = (folder / "last.pt").exists()
        summary = train(cfg, folder, resume=again, progress=progress,
                        init=stages[k - 1][0] if k and not again else None)
        if summary["status"] == "interrupted":
            break
    steps, seconds = refine.stage_totals(out)
    return summary | {"steps": steps, "seconds": seconds}
