"""The tasks, one entry each: what a task's training pairs are, for the simulation side.

Every module that needs to know how a task differs looks its :class:`TaskSpec` up here
(:func:`spec`) instead of branching on the task's name; the restoration side has its own table,
:mod:`restore.workflows`. Adding a task is one entry here and one there (and its name in the
``task`` field of :class:`simulate.config.SimConfig`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class TaskSpec:
    """How a task's pairs are made.

    name : the task's name in configs.
    anisotropic : needs a 3D shape with z ≥ 2 and ``sampling.z_factor`` ≥ 2 (the task restores
        the z axis).
    user_images : semi-synthetic pairs from ``sample.images`` are possible (2D only).
    target_on_fine_z : the target is sampled at the fine, isotropic z-step (plane j at
        z = j·pixel) rather than at the input's planes.
    narrow_target : the target is imaged through a second, narrow PSF (``target.fwhm_*``).
    lateral_slices : pairs are lateral slices degraded like z (CARE's isotropic scheme), and the
        input is float (it has been blurred and subsampled after the camera).
    second_exposure : the target is a second noisy exposure of the same sample (Noise2Noise).
    narrow_reference : :func:`simulate.pairs.simulate_volume`'s reference is imaged through an
        isotropic Gaussian of the lateral FWHM instead of the microscope's own PSF.
    """

    name: str
    anisotropic: bool = False
    user_images: bool = False
    target_on_fine_z: bool = False
    narrow_target: bool = False
    lateral_slices: bool = False
    second_exposure: bool = False
    narrow_reference: bool = False


TASKS: dict[str, TaskSpec] = {t.name: t for t in (
    TaskSpec("denoise", user_images=True),
    TaskSpec("n2n", user_images=True, second_exposure=True),
    TaskSpec("deconvolve", narrow_target=True),
    TaskSpec("upsample", anisotropic=True, target_on_fine_z=True),
    TaskSpec("isotropic", anisotropic=True, lateral_slices=True, narrow_reference=True),
)}


def spec(task: str) -> TaskSpec:
    """The :class:`TaskSpec` of a task name (the config has already checked the name)."""
    return TASKS[task]
