"""The package as users install it: a wheel and an sdist from ``python -m build``; the wheel,
unpacked away from the source tree, lists the presets and simulates (its presets and data files
ship inside it)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_wheel_installs_and_runs_without_the_source_tree(tmp_path):
    pytest.importorskip("build")
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(ROOT)],
                   check=True, capture_output=True)
    wheels, sdists = list(dist.glob("*.whl")), list(dist.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert any(n.startswith("simulate/presets/") and n.endswith(".yaml") for n in names)
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target",
                    str(target), str(wheels[0])], check=True, capture_output=True)
    # the wheel first, then this environment's dependencies; site-packages' .pth files (the
    # editable install of the source tree) are not processed on PYTHONPATH
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), sysconfig.get_paths()["purelib"]])}
    code = ("import sys, restore, simulate; from restore.cli import main; "
            "assert restore.__file__.startswith(sys.argv[1]), restore.__file__; "
            "sys.exit(main(sys.argv[2:]))")
    work = tmp_path / "elsewhere"
    work.mkdir()

    def cli(*args):
        return subprocess.run([sys.executable, "-S", "-c", code, str(target), *args], cwd=work,
                              env=env, capture_output=True, text=True)

    r = cli("presets")
    assert r.returncode == 0, r.stderr
    assert "denoise2d" in r.stdout
    r = cli("simulate", "--preset", "denoise2d", "--set", "shape=[32,32]", "--n", "1", "--out", "data")
    assert r.returncode == 0, r.stderr
    assert (work / "data" / "low" / "0000.tif").is_file()
    r = cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("synthcare ")
