"""Worker of tests/test_sharding.py: decompose and compose on every device of this process.

Run as ``python -m tests.sharding_worker IN.pkl OUT.npz`` with
``XLA_FLAGS=--xla_force_host_platform_device_count=<n>`` (read when JAX starts, hence one
process per device count). ``IN.pkl`` holds ``{case: (config, params, x, y, mode)}`` and the
names of the cases to also run on a ``2 x 4`` ``("modules", "examples")`` mesh. ``OUT.npz``
gets, per case, the keep vectors, the unit scores, the module contrasts and the predictions
computed with the default mesh (every device), and the device count.
"""
from __future__ import annotations

import os
import pickle
import sys
import warnings


def main(src: str, dst: str) -> None:
    import jax

    cache = os.environ.get("MODJAX_JAX_CACHE")
    if cache:
        from modjax import compile_cache

        compile_cache.enable(cache, store_programs=False, min_compile_secs=0.5)
    import numpy as np
    from jax.sharding import Mesh

    from modjax import sharding
    from modjax.compose import module_scores, vote
    from modjax.decompose import decompose_with_scores

    with open(src, "rb") as f:
        job = pickle.load(f)
    out = {"devices": np.asarray(jax.device_count())}
    for c in (5, 6, 16, 150):
        mesh = sharding.compose_mesh(None, c)
        out[f"compose_mesh/{c}"] = np.asarray([] if mesh is None else
                                              [mesh.shape["modules"], mesh.shape["examples"]])

    def run(tag, config, params, x, y, mode, mesh):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # classes without positives
            decomp, d = decompose_with_scores(params, (x, y), model=config, mode=mode,
                                              max_remove=0.2, n_pos=24, mesh=mesh)
        s = module_scores(decomp, params, x[:100], kind="contrast", batch_size=64, mesh=mesh)
        out[f"{tag}/keep"] = np.asarray(decomp.keep)
        for i, leaf in enumerate(jax.tree_util.tree_leaves(d)):
            out[f"{tag}/d{i}"] = np.asarray(leaf)
        out[f"{tag}/scores"] = np.asarray(s)
        out[f"{tag}/pred"] = np.asarray(vote(s, decomp.head_class))

    for name, (config, params, x, y, mode) in job["cases"].items():
        run(name, config, params, x, y, mode, None)
        if name in job["mesh_2x4"] and jax.device_count() == 8:
            mesh = Mesh(np.asarray(jax.devices()).reshape(2, 4), ("modules", "examples"))
            run(name + "@2x4", config, params, x, y, mode, mesh)
    np.savez(dst, **out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
