"""Worker of tests/test_multihost.py: one process of a multi-process (multi-host) run on CPU.

``python -m tests.multihost_worker RANK NPROC PORT OUT.npz``: with ``NPROC > 1`` the process
joins a ``jax.distributed`` run on ``localhost:PORT`` with 4 CPU devices of its own (Gloo
collectives), else it runs alone on one device. It decomposes a small LSTM (random weights,
seeded) with the default mesh (every device of every process), scores the test set and saves
the keep vectors, unit scores and module scores.
"""
from __future__ import annotations

import sys
import warnings


def main(rank: int, nproc: int, port: int, dst: str) -> None:
    import jax

    jax.config.update("jax_num_cpu_devices", 4 if nproc > 1 else 1)
    if nproc > 1:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(coordinator_address=f"localhost:{port}",
                                   num_processes=nproc, process_id=rank,
                                   initialization_timeout=120)
    import numpy as np

    from modjax.compose import module_scores
    from modjax.data.synthetic import load_synthetic
    from modjax.decompose import decompose_with_scores
    from modjax.models import ModelConfig, init_params

    data = load_synthetic("many_to_one", n_train=600, n_test=64, seed=1)
    cfg = ModelConfig(io="many_to_one", cell="lstm", num_classes=data.num_classes,
                      vocab_size=data.vocab_size, in_len=data.in_len, out_len=data.out_len,
                      layers=1, units=8, embed_dim=8)
    params = jax.tree_util.tree_map(np.asarray, init_params(cfg, seed=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        decomp, d = decompose_with_scores(params, (data.x_train, data.y_train), model=cfg,
                                          n_pos=24, max_remove=0.2)
    s = module_scores(decomp, params, data.x_test, kind="contrast")
    np.savez(dst, keep=np.asarray(decomp.keep), d=np.asarray(d), scores=np.asarray(s),
             devices=jax.device_count(), processes=jax.process_count())
    if nproc > 1:
        jax.distributed.shutdown()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
