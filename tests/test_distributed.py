"""Dataset generation on a Dask cluster: bit-identical to the in-process writer, resumable after
a killed worker or client, refused clearly when misconfigured."""

from __future__ import annotations

import os
import signal
import threading
import time

import numpy as np
import pytest

from restore.cli import main
from simulate import SynthcareError
from simulate.config import SimConfig
from simulate.dataset import write_dataset
from simulate.omezarr import ZarrSink

zarr = pytest.importorskip("zarr")
distributed = pytest.importorskip("distributed")

CFG = SimConfig.from_dict({"task": "denoise", "shape": [6, 32, 32]})
NAMES = ("low", "GT", "clean")


def _arrays(path):
    root = zarr.open_group(str(path), mode="r")
    return {n: root[n]["0"][:] for n in NAMES}, root["done"][:]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = write_dataset(CFG, tmp_path_factory.mktemp("ref") / "d.zarr", 12, progress=False,
                        fmt="zarr")
    return _arrays(out)[0]


def _equal(path, reference):
    got, done = _arrays(path)
    assert np.all(done == 1)
    for name in NAMES:
        assert np.array_equal(got[name], reference[name]), name  # bit-identical


def test_two_local_workers_write_the_in_process_dataset(tmp_path, reference):
    CFG.to_yaml(tmp_path / "sim.yaml")
    assert main(["simulate", "--config", str(tmp_path / "sim.yaml"), "--n", "12", "--format",
                 "zarr", "--scheduler", "local:2", "--out", str(tmp_path / "d.zarr")]) == 0
    _equal(tmp_path / "d.zarr", reference)


def test_a_killed_worker_is_replaced_and_its_chunk_retried(tmp_path, reference):
    out = tmp_path / "d.zarr"
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, silence_logs=50) as cluster, \
            distributed.Client(cluster) as client:
        pids = list(client.run(os.getpid).values())

        killed = []

        def flagged() -> int:
            try:
                return int(_arrays(out)[1].sum())
            except Exception:  # the arrays are being made
                return 0

        def kill_one():  # once the first chunk is flagged, SIGKILL a worker mid-run
            while flagged() < 2:
                time.sleep(0.05)
            os.kill(pids[0], signal.SIGKILL)
            killed.append(flagged())

        killer = threading.Thread(target=kill_one, daemon=True)
        killer.start()
        write_dataset(CFG, out, 12, progress=False, fmt="zarr", scheduler=cluster.scheduler_address)
        killer.join(timeout=30)
    assert killed and killed[0] < 12  # the worker died while pairs were left
    _equal(out, reference)


def test_a_killed_client_resumes_without_redoing_finished_pairs(tmp_path, reference, monkeypatch):
    out = tmp_path / "d.zarr"
    real, calls = ZarrSink.mark_done, []

    def interrupt(self, indices):
        calls.append(indices)
        if len(calls) == 3:  # the client dies before recording the second distributed chunk
            raise KeyboardInterrupt
        real(self, indices)

    monkeypatch.setattr(ZarrSink, "mark_done", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_dataset(CFG, out, 12, progress=False, fmt="zarr", scheduler="local:2")
    monkeypatch.setattr(ZarrSink, "mark_done", real)
    _, done = _arrays(out)
    finished = np.flatnonzero(done)
    assert 1 < len(finished) < 12
    root = zarr.open_group(str(out), mode="a")
    root["clean"]["0"][finished[-1]] = -1.0  # a sentinel: a finished pair must not be redone
    write_dataset(CFG, out, 12, progress=False, fmt="zarr", scheduler="local:2")
    got, done = _arrays(out)
    assert np.all(done == 1) and np.all(got["clean"][finished[-1]] == -1.0)
    rest = [i for i in range(12) if i != finished[-1]]
    assert np.array_equal(got["clean"][rest], reference["clean"][rest])
    assert np.array_equal(got["low"], reference["low"])


@pytest.mark.parametrize(("argv", "message"), [
    (["--scheduler", "local:0", "--format", "zarr"], "local:W needs W ≥ 1"),
    (["--scheduler", "myhost:8786", "--format", "zarr"], "give local:W"),
    (["--scheduler", "local:2"], "add --format zarr"),
])
def test_bad_schedulers_are_refused_before_any_work(tmp_path, capsys, argv, message):
    out = tmp_path / "d"
    assert main(["simulate", "--preset", "denoise2d", "--n", "2", "--out", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and not out.exists()


@pytest.mark.slow
def test_an_unreachable_scheduler_is_one_line():
    with pytest.raises(SynthcareError, match="cannot reach the scheduler"):
        from simulate.distributed import connect

        with connect("tcp://127.0.0.1:9"):
            pass


def test_training_reads_a_zarr_dataset_lazily(tmp_path, recorder):
    from restore.config import load_run
    from restore.diskpairs import ZarrPairs
    from restore.normalize import percentile_affine
    from restore.train import folder_data, read_log, train

    cfg2 = SimConfig.from_dict({"task": "denoise", "shape": [64, 64]})
    out = write_dataset(cfg2, tmp_path / "d.zarr", 10, progress=False, fmt="zarr")
    pairs = ZarrPairs(out)
    root = zarr.open_group(str(out), mode="r")
    x = root["low"]["0"][3].astype(np.float32)
    assert np.array_equal(pairs[3][0], percentile_affine(x)(x))  # as a TIFF pair is normalised
    assert len(pairs[:9]) == 9 and np.array_equal(pairs[:9].indices, np.arange(9))
    run = load_run("denoise2d", None, ["shape=[64,64]", "train.patch=[32,32]", "train.batch_size=4",
                                       "train.filters=8", "train.val_patches=4", "train.workers=0",
                                       "train.steps=3", "train.val_every=3"])
    data = folder_data(run, out)
    source = data.make_batch.func.__self__.images
    source.low, source.gt = recorder(source.low), recorder(source.gt)
    data.make_batch(0)
    assert 0 < source.low.largest <= root["low"]["0"][0].nbytes  # one pair at a time
    assert train(run, tmp_path / "run", pairs=out, progress=False)["status"] == "finished"
    assert read_log(tmp_path / "run")[-1]["step"] == 3
    with pytest.raises(SynthcareError, match="not a synthcare OME-Zarr dataset"):
        ZarrPairs(tmp_path / "run")
