"""Training settings and the run configuration (simulation + training in one file).

A run file is a simulation config (see :class:`simulate.SimConfig`) with a ``train:`` section;
the presets are run files. Every setting has a dotted name (``train.steps``, ``camera.photons``)
for ``--set`` and study sweeps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from simulate import Settings, SimConfig
from simulate.config_io import load_settings


class RefineConfig(Settings):
    """Self-refinement on the user's own raw images (:mod:`restore.refine`): after a first stage on
    the sample library, the network restores these images, and the next stage trains on
    semi-synthetic pairs made from the restorations through the camera model (mixed with the
    library), warm-started from the previous stage. The training budget is split over the stages."""

    images: tuple[str, ...] = Field((), description="raw 2D images of this config's camera (ADU, "
                                    "as recorded); empty: no refinement")
    fraction: float = Field(0.5, gt=0, le=1, description="fraction of the pairs of a refinement "
                            "stage made from the restored images (the rest from the library)")
    start: float = Field(0.4, gt=0, lt=1, description="share of the budget (steps, minutes) the "
                         "first, library-only stage takes; the rounds share the rest equally")
    rounds: int = Field(1, ge=1, le=5, description="refinement stages (each restores the images "
                        "anew with the latest network)")


class TrainConfig(Settings):
    """How a network is trained (CSBDeep's defaults where it has one)."""

    steps: int | None = Field(2000, ge=1, description="optimiser steps (None: stop by minutes)")
    minutes: float | None = Field(None, gt=0, description="wall-clock budget; stops at whichever "
                                  "of steps and minutes comes first")
    batch_size: int = Field(16, ge=1, le=4096)
    patch: tuple[int, ...] | None = Field(None, description="patch size (y, x) or (z, y, x); default "
                                          "64×64 in 2D, 16×64×64 in 3D")
    patches_per_image: int = Field(8, ge=1, description="patches cropped from each simulated image")
    lr: float = Field(4e-4, gt=0, lt=1, description="learning rate (AdamW)")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    loss: Literal["mae", "mse", "mse+ssim", "laplace"] = Field(
        "mae", description="laplace: probabilistic network (mean and per-pixel scale); mse+ssim: "
        "squared error plus an SSIM term (sharper deconvolution, flat backgrounds)")
    depth: int = Field(2, ge=0, le=6)
    filters: int = Field(32, ge=1, le=512, description="filters of the first level (doubling)")
    kernel: int | None = Field(None, ge=1, le=11, description="kernel size (default 5 in 2D, 3 in 3D)")
    batch_norm: bool = False
    residual: bool = True
    val_every: int = Field(100, ge=1, description="steps between validations and checkpoints")
    val_patches: int = Field(32, ge=1, description="patches in the fixed validation set")
    patience: int = Field(10, ge=1, description="validations without improvement before the "
                          "learning rate is reduced")
    lr_factor: float = Field(0.5, gt=0, lt=1, description="learning-rate reduction on plateau")
    min_lr: float = Field(1e-6, ge=0)
    schedule: Literal["plateau", "cosine"] = Field(
        "plateau", description="plateau: reduce on a validation plateau (CSBDeep); cosine: decay "
        "from lr to min_lr over the budget (steps or minutes, whichever ends first)")
    foreground: float = Field(0.4, ge=0, le=1, description="patch filter: the target must reach "
                              "this fraction of its image's 99.9th percentile")
    jitter: float = Field(0.0, ge=0, le=10, description="random jitter of the normalisation "
                          "percentiles (augmentation), percent")
    augment: bool = Field(True, description="random flips and 90° rotations")
    workers: int | None = Field(None, ge=0, le=64, description="DataLoader worker processes "
                                "simulating pairs (default 0: in the training process, which on a "
                                "CPU whose cores training already fills waits least); with "
                                "device: cuda, processes drawing the geometry of the next pairs "
                                "(default: the cores but two, at most 8)")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    bf16: bool | None = Field(None, description="bfloat16 autocast (default: on for CUDA)")
    seed: int = Field(0, ge=0, description="seed of the network's initial weights")
    refine: RefineConfig = RefineConfig()

    @model_validator(mode="after")
    def _budget(self) -> TrainConfig:
        if self.steps is None and self.minutes is None:
            raise ValueError("give train.steps or train.minutes (or both)")
        m = 2**self.depth
        if self.patch is not None and any(p < m or p % m for p in self.patch):
            raise ValueError(f"train.patch {list(self.patch)}: every size must be a multiple of "
                             f"2^depth = {m} (the network pools {self.depth} times)")
        return self


class RunConfig(SimConfig):
    """A simulation config plus its ``train`` section."""

    train: TrainConfig = TrainConfig()

    @property
    def sim(self) -> SimConfig:
        """The simulation part alone."""
        return SimConfig.model_validate(self.model_dump(exclude={"train"}))

    @property
    def patch(self) -> tuple[int, ...]:
        """The training patch size (default by the model's dimensionality)."""
        from .data import model_ndim

        if self.train.patch is not None:
            return tuple(self.train.patch)
        return (64, 64) if model_ndim(self) == 2 else (16, 64, 64)


def load_run(preset: str | None = None, config: str | Path | None = None,
             overrides: list[str] | None = None) -> RunConfig:
    """The run a command line asks for (see :func:`simulate.config_io.load_settings`)."""
    return load_settings(RunConfig, preset, config, overrides)
