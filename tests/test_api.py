"""The curated public API: every exported name exists and documents itself."""
from __future__ import annotations

import inspect

import modjax


def test_every_public_name_is_exported_and_documented():
    missing = [n for n in modjax.__all__ if not hasattr(modjax, n)]
    assert not missing, missing
    undocumented = []
    for name in modjax.__all__:
        obj = getattr(modjax, name)
        if inspect.isfunction(obj) or inspect.isclass(obj) or inspect.ismodule(obj):
            if not (inspect.getdoc(obj) or "").strip():
                undocumented.append(name)
    assert not undocumented, undocumented
    assert len(set(modjax.__all__)) == len(modjax.__all__)
