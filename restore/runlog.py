"""A run's training log: ``log.csv`` (and TensorBoard when installed), and reading it back."""

from __future__ import annotations

import csv
import os
from pathlib import Path

LOG_FIELDS = ("step", "seconds", "train_loss", "val_loss", "val_psnr", "lr", "patches_per_s")


class RunLog:
    """``log.csv`` of a run (a header unless resuming one), and TensorBoard when installed."""

    def __init__(self, out: Path | None, resume: bool):
        self.path, self.writer = (None, None) if out is None else (out / "log.csv", _tensorboard(out))
        if out is not None and (not resume or not self.path.exists()):
            with open(self.path, "w", newline="") as f:
                csv.writer(f).writerow(LOG_FIELDS)

    @classmethod
    def silent(cls) -> RunLog:
        """A log that writes nothing (the ranks other than 0 of a torchrun job)."""
        return cls(None, False)

    def write(self, row: tuple) -> None:
        if self.path is None:
            return
        with open(self.path, "a", newline="") as f:
            csv.writer(f).writerow(row)
        if self.writer is not None:
            for k, v in zip(LOG_FIELDS[2:], row[2:], strict=True):
                self.writer.add_scalar(k, v, row[0])

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


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
