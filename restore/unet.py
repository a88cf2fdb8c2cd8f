"""Residual U-Net for 2D and 3D images, with CSBDeep's knobs and defaults.

Architecture (CSBDeep's ``unet_block``, so speed and quality compare like for like): at each
of ``depth`` levels two ``kernel``-sized convolutions + ReLU, then 2× max-pooling; at the
bottom one convolution with ``filters·2^depth`` and one with ``filters·2^(depth−1)``
channels; on the way up nearest-neighbour 2× upsampling, concatenation with the skip
connection and two convolutions (the second halving the channels); a 1×1 linear output
convolution, to which the input is added when input and output channels match (residual).

With ``probabilistic=True`` the network also predicts, per pixel, the scale ``b`` of a
Laplace distribution around its prediction (softplus + a small floor), trained with the
Laplace negative log-likelihood: a per-pixel uncertainty.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

SCALE_FLOOR = 1e-3  # smallest Laplace scale, in normalised intensity units


def memory_format_for(ndim: int) -> torch.memory_format:
    """Tensor layout for training and prediction: channels-last, in 2D and 3D. On the CUDA
    device it feeds the tensor cores; on this project's 2-core AVX-512 CPUs oneDNN's channels-
    last kernels also train faster (``benchmarks/bench_train.py --layouts``): 2D 1.2–1.4×
    (kernel 3 and 5, batches of 8×64² and 16×128²), 3D 1.3×; prediction (``bench_predict.py``)
    1.17× in 2D (1024²), 1.27× in 3D (64×256²)."""
    return torch.channels_last_3d if ndim == 3 else torch.channels_last


@dataclass(frozen=True)
class UNetConfig:
    """Network hyper-parameters (CSBDeep defaults; kernel None = 5 in 2D, 3 in 3D)."""

    ndim: int = 2
    channels_in: int = 1
    channels_out: int = 1
    depth: int = 2
    filters: int = 32
    kernel: int | None = None
    batch_norm: bool = False
    residual: bool = True
    probabilistic: bool = False

    @property
    def kernel_size(self) -> int:
        """The convolution kernel size actually used."""
        return self.kernel if self.kernel is not None else (5 if self.ndim == 2 else 3)

    def to_dict(self) -> dict:
        """Plain dict, for checkpoints."""
        return asdict(self)


def _conv(cfg: UNetConfig, c_in: int, c_out: int) -> nn.Sequential:
    conv = (nn.Conv2d if cfg.ndim == 2 else nn.Conv3d)(c_in, c_out, cfg.kernel_size,
                                                       padding=cfg.kernel_size // 2,
                                                       bias=not cfg.batch_norm)
    layers: list[nn.Module] = [conv]
    if cfg.batch_norm:
        layers.append((nn.BatchNorm2d if cfg.ndim == 2 else nn.BatchNorm3d)(c_out))
    layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class UNet(nn.Module):
    """Residual U-Net; input (N, C, Y, X) or (N, C, Z, Y, X), spatial sizes multiples of
    2^depth (use :func:`pad_to_multiple` or :mod:`restore.predict` for any size).

    Output: (N, C_out, ...) in the input's (normalised) units; with ``probabilistic`` the
    output has 2·C_out channels: the means, then the Laplace scales.
    """

    def __init__(self, cfg: UNetConfig):
        super().__init__()
        if cfg.ndim not in (2, 3) or cfg.depth < 0 or cfg.filters < 1 or cfg.kernel_size % 2 == 0:
            raise ValueError(f"invalid U-Net config {cfg}: ndim 2|3, depth >= 0, filters >= 1, odd kernel")
        self.cfg = cfg
        f, d = cfg.filters, cfg.depth
        self.down = nn.ModuleList()
        c = cfg.channels_in
        for level in range(d):
            self.down.append(nn.Sequential(_conv(cfg, c, f * 2**level), _conv(cfg, f * 2**level,
                                                                                f * 2**level)))
            c = f * 2**level
        self.bottom = nn.Sequential(_conv(cfg, c, f * 2**d), _conv(cfg, f * 2**d, f * 2 ** max(0, d - 1)))
        c = f * 2 ** max(0, d - 1)
        self.up = nn.ModuleList()
        for level in reversed(range(d)):
            skip = f * 2**level
            self.up.append(nn.Sequential(_conv(cfg, c + skip, f * 2**level),
                                         _conv(cfg, f * 2**level, f * 2 ** max(0, level - 1))))
            c = f * 2 ** max(0, level - 1)
        n_out = cfg.channels_out * (2 if cfg.probabilistic else 1)
        self.head = (nn.Conv2d if cfg.ndim == 2 else nn.Conv3d)(c, n_out, 1)
        self.pool = nn.MaxPool2d(2) if cfg.ndim == 2 else nn.MaxPool3d(2)
        # plain attributes, so that TorchScript compiles forward (restore.export)
        self.n_mean: int = cfg.channels_out
        self.add_input: bool = cfg.residual and cfg.channels_in == cfg.channels_out
        self.probabilistic: bool = cfg.probabilistic
        self.multiple: int = 2**cfg.depth  # spatial sizes must be multiples of this
        self.scale_floor: float = SCALE_FLOOR

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Restore a normalised batch (see the class docstring for shapes)."""
        skips: list[torch.Tensor] = []
        h = x
        for block in self.down:
            h = block(h)
            skips.append(h)
            h = self.pool(h)
        h = self.bottom(h)
        for block in self.up:
            h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            h = block(torch.cat([h, skips.pop()], dim=1))
        out = self.head(h)
        c = self.n_mean
        mean = out[:, :c]
        if self.add_input:
            mean = mean + x
        if not self.probabilistic:
            return mean
        scale = F.softplus(out[:, c:]) + self.scale_floor
        return torch.cat([mean, scale], dim=1)

    def receptive_radius(self) -> int:
        """Pixels of context on each side that influence one output pixel (an upper bound,
        counting the pooling grid's offsets)."""
        r = self.cfg.kernel_size // 2
        radius = 0
        for level in range(self.cfg.depth):
            radius += 2 * r * 2**level * 2  # two convolutions on the way down and on the way up
        radius += 2 * r * 2**self.cfg.depth  # bottom
        return radius + 2**self.cfg.depth


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[slice, ...]]:
    """Zero-pad the spatial axes (all after N, C) up to multiples of ``multiple``; returns the
    padded tensor and the slices that crop the result back."""
    spatial = x.shape[2:]
    pads = [(-n) % multiple for n in spatial]
    if not any(pads):
        return x, tuple(slice(None) for _ in spatial)
    flat = []
    for p in reversed(pads):
        flat += [0, p]
    return F.pad(x, flat), tuple(slice(0, n) for n in spatial)


class PaddedUNet(nn.Module):
    """A :class:`UNet` that takes any spatial size: the input is padded up to multiples of
    2^depth with its edge values (no branch on the size, so ONNX exports it) and the output
    cropped back. Built from keyword arguments
    (those of :class:`UNetConfig`), so the file alone rebuilds it: this is the architecture of
    exported models (:mod:`restore.export`, TorchScript, ONNX, bioimage.io)."""

    def __init__(self, **kwargs):
        super().__init__()
        self.net = UNet(UNetConfig(**kwargs))
        self.multiple: int = self.net.multiple

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C, [Z,] Y, X) in normalised units → the network's output of the same size."""
        pads: list[int] = []
        for i in range(x.dim() - 1, 1, -1):  # F.pad lists the last axis first
            pads += [0, (self.multiple - x.shape[i] % self.multiple) % self.multiple]
        out = self.net(F.pad(x, pads, mode="replicate"))
        if x.dim() == 4:
            return out[:, :, : x.shape[2], : x.shape[3]]
        return out[:, :, : x.shape[2], : x.shape[3], : x.shape[4]]
