"""Compile every CUDA kernel to PTX for sm_90 (H100/H200) on a machine without a GPU.

This checks what the CUDA simulator cannot: that numba's CUDA target types and compiles the
kernels, including the CPU ``@njit`` Philox samplers the camera kernel calls as device
functions. Needs NVVM, which the ``nvidia-cuda-nvcc-cu12`` wheel of the dev extra brings (run
by ``tests/test_render_cuda.py``); works with numba's built-in CUDA target (numba 0.68) and with
numba-cuda (0.30.4, ``pip install "numba-cuda[cu12]"``). Prints one JSON line per kernel.
"""

import json
from types import SimpleNamespace

import numba.cuda.dispatcher as _dispatcher

# no GPU here: a device function asks the current device for its compute capability
_dispatcher.get_current_device = lambda: SimpleNamespace(compute_capability=(9, 0))

from numba import cuda  # noqa: E402
from numba import types as T  # noqa: E402

import simulate.camera_cuda as cam  # noqa: E402
import simulate.render_cuda as ren  # noqa: E402


def arr(dtype, ndim):
    return T.Array(dtype, ndim, "C")


f32_4 = arr(T.float32, 4)
f64_1, f64_2, f64_3 = arr(T.float64, 1), arr(T.float64, 2), arr(T.float64, 3)
i64_1, i64_2, u64_2 = arr(T.int64, 1), arr(T.int64, 2), arr(T.uint64, 2)
f64 = T.float64
boxes = (i64_2, i64_2, f64_1, f64_2, f64_3, f64_2, f64_1)  # lo, hi, spacing, ..., inner
kernels = {
    "camera": (cam._capture_kernel, (f32_4, f64_2, f64_2, f64_2, f64_2, f64, f64, f64, f64,
                                     T.boolean, f64, T.boolean, u64_2, f32_4)),
    "splat_rows": (ren._splat_rows, (f32_4, f64_1, f64_1, f64_1, f64_1, i64_1, i64_1)),
    "ellipsoid_rows": (ren._ellipsoid_rows, (f32_4, i64_1, *boxes, f64_1, f64_1)),
}
for name, (kernel, sig) in kernels.items():
    ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=(9, 0))
    print(json.dumps({"kernel": name, "characters": len(ptx), "sm_90": ".target sm_90" in ptx,
                      "entry": ".entry" in ptx}))
