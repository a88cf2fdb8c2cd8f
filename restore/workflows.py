"""The tasks, one entry each, for the restoration side: the network's dimensionality and
training images, the classical baselines it is scored against, and how ``predict`` applies it.

Every module of :mod:`restore` that needs to know how a task differs looks its
:class:`Workflow` up here (:func:`workflow`) instead of branching on the task's name; the
simulation side has :mod:`simulate.tasks`. Adding a task is one entry here and one there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from simulate.tasks import TASKS


@dataclass(frozen=True)
class Workflow:
    """How a task's model is trained, scored and applied.

    name : the task's name in configs.
    slices : a 2D network on the lateral slices of a 3D config (CARE's isotropic scheme): its
        training images are the pairs' slices, never rotated (their rows are the degraded
        axis), and prediction runs it over the stack's xz and yz planes (no test-time
        augmentation).
    interpolate_z : the input is interpolated along z onto the target's planes before the
        network (CARE's upsampling scheme).
    z_factor : the model changes the z sampling: ``predict`` needs the acquisition's z factor
        (``--factor``) and writes the fine z-step; evaluation scores acquired stacks against
        isotropic references.
    baselines : the classical methods the network is scored against: a tuned Gaussian filter,
        Richardson–Lucy with the true PSF, or interpolation along z.
    guarded : ``predict --report`` checks inputs and outputs (:mod:`restore.guard`).
    tag : the bioimage.io tag of the restoration (:mod:`restore.export`).
    """

    name: str
    slices: bool = False
    interpolate_z: bool = False
    z_factor: bool = False
    baselines: Literal["gaussian", "richardson-lucy", "interpolation"] = "gaussian"
    guarded: bool = False
    tag: str = ""


WORKFLOWS: dict[str, Workflow] = {w.name: w for w in (
    Workflow("denoise", guarded=True, tag="denoising"),
    Workflow("n2n", guarded=True, tag="denoising"),
    Workflow("deconvolve", baselines="richardson-lucy", tag="deconvolution"),
    Workflow("upsample", interpolate_z=True, z_factor=True, baselines="interpolation",
             tag="axial-upsampling"),
    Workflow("isotropic", slices=True, z_factor=True, baselines="interpolation",
             tag="isotropic-reconstruction"),
)}
assert WORKFLOWS.keys() == TASKS.keys(), "every task needs a workflow and a task spec"


def workflow(task: str) -> Workflow:
    """The :class:`Workflow` of a task name (the config has already checked the name)."""
    return WORKFLOWS[task]
