"""Running the project's experiment binaries from tests: a fresh interpreter in the repository
root, offline, with its output captured."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_binary(module: str, args, timeout: float = 600) -> subprocess.CompletedProcess:
    """``python -m <module> <args>`` from the repository root with the hub offline; the
    completed process (``returncode``, ``stdout``, ``stderr``)."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    return subprocess.run([sys.executable, "-m", module] + list(args), cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
