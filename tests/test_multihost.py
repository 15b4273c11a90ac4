"""Multi-host: two ``jax.distributed`` processes on localhost (CPU, Gloo collectives, 4
devices each) decompose and compose exactly as one process on one device.

Each process runs :mod:`tests.multihost_worker` with the default mesh, which spans the 8
devices of both processes; a third process is the one-device reference.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_match_one_device(tmp_path):
    port = free_port()
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    runs = {"rank0": (0, 2), "rank1": (1, 2), "single": (0, 1)}
    procs = {k: subprocess.Popen([sys.executable, "-m", "tests.multihost_worker", str(r),
                                  str(n), str(port), str(tmp_path / f"{k}.npz")],
                                 cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
             for k, (r, n) in runs.items()}
    out = {}
    for k, p in procs.items():
        log, _ = p.communicate(timeout=300)
        assert p.returncode == 0, f"{k} failed:\n{log[-4000:]}"
        out[k] = dict(np.load(tmp_path / f"{k}.npz"))
    one = out["single"]
    assert int(one["devices"]) == 1 and int(one["processes"]) == 1
    assert (~one["keep"]).sum() > 0
    for k in ("rank0", "rank1"):
        assert int(out[k]["devices"]) == 8 and int(out[k]["processes"]) == 2
        np.testing.assert_array_equal(out[k]["keep"], one["keep"])
        assert out[k]["d"].tobytes() == one["d"].tobytes()
        np.testing.assert_allclose(out[k]["scores"], one["scores"], rtol=0, atol=1e-6)
        np.testing.assert_array_equal(np.argmax(out[k]["scores"], 0),
                                      np.argmax(one["scores"], 0))
