"""Run under NUMBA_ENABLE_CUDASIM=1: the CUDA camera kernel against the CPU camera.

Prints one JSON line per camera: whether the frames are bit-identical, and their means.
"""

import json

import numpy as np
from numba import cuda

from simulate.camera import Camera
from simulate.camera_cuda import capture_cuda
from simulate.rng import key_from

cameras = {
    "scmos": Camera(qe=0.8, gain=2.0, offset=100, read_noise=1.6, dark=0.2, hot_pixels=0.05),
    "emccd": Camera(qe=0.9, gain=0.3, offset=500, read_noise=30.0, em_gain=40.0, bits=None),
    "counting": Camera(qe=0.5, photon_counting=True),
    "pmt": Camera(qe=1.0, gain=0.2, offset=10, read_noise=1.0, em_gain=100.0, em_spread=0.1, bits=12),
}
photons = np.random.default_rng(0).gamma(2.0, 15.0, (2, 3, 8, 16)).astype(np.float32)
for name, cam in cameras.items():
    seeds = [7, 8]
    want = cam.capture(photons, [np.random.default_rng(s) for s in seeds])
    keys = np.array([key_from(np.random.default_rng(s)) for s in seeds], np.uint64)
    hot = cam.hot_map(photons.shape)
    maps = [np.ascontiguousarray(np.broadcast_to(np.asarray(m, np.float64), photons.shape[2:]))
            for m in (0.0 if hot is None else hot, cam.read_noise, cam.gain, cam.offset)]
    out = cuda.device_array(photons.shape, np.float32)
    capture_cuda(cuda.to_device(photons), *maps, float(cam.qe), float(cam.dark),
                 0.0 if cam.em_gain is None else float(cam.em_gain), float(cam.em_spread),
                 bool(cam.photon_counting),
                 np.inf if cam.bits is None else 2.0 ** cam.bits - 1, True, keys, out)
    got = out.copy_to_host()
    print(json.dumps({"camera": name, "identical": bool(np.array_equal(got, want)),
                      "mean_gpu": float(got.mean()), "mean_cpu": float(want.mean())}))
