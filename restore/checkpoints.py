"""Checkpoints: written atomically, read back with one clear line when one is corrupt, and
``best.pt`` falling back to ``last.pt``; :func:`load_model` rebuilds the trained network."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from simulate import SynthcareError, atomic_write

from .config import RunConfig
from .unet import UNet, UNetConfig

CHECKPOINTS = ("best.pt", "last.pt")


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
