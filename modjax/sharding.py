"""Device meshes for the sharded decomposition and composition (``docs/scaling.md``).

modjax runs on several devices through JAX's own SPMD machinery: a
:class:`jax.sharding.Mesh`, arrays placed with :class:`~jax.sharding.NamedSharding`, ``jax.jit``
(which partitions the trace over the examples) and :func:`jax.shard_map` (which runs each
device's share of the classes or modules with no communication). This module holds what
:func:`modjax.decompose` and :func:`modjax.module_scores` share:

* :func:`resolve_mesh` — the ``mesh=`` argument: ``None`` (every device when there is more
  than one), a ``Mesh``, a sequence of devices, or ``False`` (one device).
* :func:`compose_mesh` — the default composition mesh ``("modules", "examples")``.
* :func:`put` — a host array as a global array with a given sharding (also across
  processes: every process passes the same host array and supplies its own devices' shards).
* :func:`to_host` — a (replicated) result as an ordinary array on the default device.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

#: the axis names a composition mesh may use: modules on one, examples on the other
MODULES, EXAMPLES = "modules", "examples"
COMPOSE_AXES = (MODULES, EXAMPLES)

MeshArg = Union[None, bool, Mesh, Sequence]


def _devices() -> list:
    """Every device of the run: all local devices, and in a multi-process run (after
    ``jax.distributed.initialize``) every process's devices."""
    return list(jax.devices())


def resolve_mesh(mesh: MeshArg, *, name: str = "mesh") -> Optional[Mesh]:
    """The mesh to run on, or ``None`` for the single-device path.

    Args:
      mesh: ``None`` — all devices (:func:`jax.devices`) on one axis ``"examples"`` when there
        are more than one, else the single-device path; ``False`` — the single-device path;
        a :class:`jax.sharding.Mesh` — used as given; a non-empty sequence of distinct
        devices — one axis ``"examples"`` over them.
      name: the argument's name in error messages.

    Returns:
      A mesh of two or more devices, or ``None`` (one device: the unsharded code runs).
    """
    if mesh is None:
        devices = _devices()
        return Mesh(np.asarray(devices), (EXAMPLES,)) if len(devices) > 1 else None
    if mesh is False:
        return None
    if mesh is True:
        raise TypeError(f"{name} must be None, False, a jax.sharding.Mesh or a sequence of "
                        "devices, got True")
    if isinstance(mesh, Mesh):
        if mesh.size == 0:
            raise ValueError(f"{name} must hold at least one device, got an empty mesh")
        return mesh if mesh.size > 1 else None
    if isinstance(mesh, (list, tuple)):
        if not mesh:
            raise ValueError(f"{name} must hold at least one device, got an empty sequence")
        bad = [d for d in mesh if not isinstance(d, jax.Device)]
        if bad:
            raise TypeError(f"{name} as a sequence must hold jax devices, got "
                            f"{type(bad[0]).__name__} ({bad[0]!r})")
        if len(set(mesh)) != len(mesh):
            raise ValueError(f"{name} lists a device more than once: {list(mesh)}")
        return Mesh(np.asarray(mesh), (EXAMPLES,)) if len(mesh) > 1 else None
    raise TypeError(f"{name} must be None, False, a jax.sharding.Mesh or a sequence of devices, "
                    f"got {type(mesh).__name__}")


def compose_mesh(mesh: MeshArg, num_modules: int, *, name: str = "mesh") -> Optional[Mesh]:
    """The composition mesh ``("modules", "examples")`` for ``num_modules`` modules.

    A given :class:`~jax.sharding.Mesh` must name its axes among ``"modules"`` and
    ``"examples"`` (a missing one counts as size 1). Devices given as ``None`` (all) or a
    sequence are arranged as ``g x (n / g)`` with ``g = gcd(num_modules, n)`` modules-wise, so
    the modules split evenly and the rest of the devices split the examples.

    Returns:
      A two-axis mesh, or ``None`` for the single-device path.
    """
    if isinstance(mesh, Mesh):
        unknown = [a for a in mesh.axis_names if a not in COMPOSE_AXES]
        if unknown:
            raise ValueError(f"{name} axes must be named among {COMPOSE_AXES} (modules on one, "
                             f"examples on the other), got axis names {tuple(mesh.axis_names)}")
        if mesh.size <= 1:
            return None
        shape = [mesh.shape.get(a, 1) for a in COMPOSE_AXES]
        return Mesh(mesh.devices.reshape(shape), COMPOSE_AXES)
    flat = resolve_mesh(mesh, name=name)
    if flat is None:
        return None
    devices = flat.devices.reshape(-1)
    g = math.gcd(int(num_modules), devices.size) if num_modules > 0 else 1
    return Mesh(devices.reshape(g, devices.size // g), COMPOSE_AXES)


def round_up(n: int, k: int) -> int:
    """``n`` rounded up to a multiple of ``k`` (``k >= 1``)."""
    return -(-int(n) // int(k)) * int(k)


#: fewest rows a device traces: XLA's CPU backend multiplies fewer rows with another kernel,
#: whose rounding differs (measured: up to 48 rows differ, 64 and more agree bit for bit)
MIN_DEVICE_ROWS = 64


def device_rows(n: int, devices: int) -> int:
    """Rows to trace ``n`` examples on ``devices`` devices: a multiple of ``devices`` with at
    least :data:`MIN_DEVICE_ROWS` per device (the extra rows are invalid padding)."""
    return round_up(max(int(n), MIN_DEVICE_ROWS * int(devices)), devices)


def put(a, mesh: Mesh, spec: PartitionSpec) -> jax.Array:
    """Host array ``a`` as a global array on ``mesh`` with partition ``spec``.

    Built with :func:`jax.make_array_from_callback`, so it also works when the mesh spans
    several processes: every process holds the same ``a`` and fills its own devices' shards.
    """
    a = np.asarray(a)
    return jax.make_array_from_callback(a.shape, NamedSharding(mesh, spec), lambda i: a[i])


def put_tree(tree, mesh: Mesh, spec: PartitionSpec = PartitionSpec()):
    """:func:`put` over every leaf of a pytree (default: replicated on every device)."""
    return jax.tree_util.tree_map(lambda a: put(a, mesh, spec), tree)


def replicated(mesh: Mesh) -> NamedSharding:
    """The sharding that holds a full copy on every device of ``mesh``."""
    return NamedSharding(mesh, PartitionSpec())


def to_host(a):
    """A replicated global array as an ordinary array on the default device (``None`` as is).

    Results leave the mesh so that the rest of modjax (single-device code) can combine them
    with other arrays.
    """
    if a is None:
        return None
    return jax.numpy.asarray(np.asarray(a))


__all__ = ["COMPOSE_AXES", "EXAMPLES", "MIN_DEVICE_ROWS", "MODULES", "compose_mesh",
           "device_rows", "put", "put_tree",
           "replicated", "resolve_mesh", "round_up", "to_host"]
