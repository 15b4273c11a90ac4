"""The processed-dataset cache: hits, invalidation by files, options and version, and safety."""
import hashlib
import os
import shutil

import numpy as np
import pytest

from modjax.data import cache, load_dataset
from modjax.data.base import default_data_dir
from modjax.data.clinc import load_clinc
from tests.ci import in_ci

SHARED = default_data_dir()


@pytest.fixture
def clinc_copy(tmp_path):
    """A private copy of the CLINC folder (so a test can edit its files)."""
    if not os.path.isdir(os.path.join(SHARED, "clinc")):
        if in_ci():
            pytest.fail(f"shared CLINC files missing under {SHARED!r} (CI is set)")
        pytest.skip(f"shared CLINC files not present under {SHARED!r}")
    root = tmp_path / "data"
    shutil.copytree(os.path.join(SHARED, "clinc"), root / "clinc")
    return str(root)


def _same(a, b):
    for f in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
    assert a.class_names == b.class_names and a.vocab == b.vocab
    assert (a.name, a.io, a.vocab_size, a.in_len, a.out_len, a.notes) == (
        b.name, b.io, b.vocab_size, b.in_len, b.out_len, b.notes)


def test_folder_digest_is_sha256_over_paths_and_contents(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "a.txt").write_bytes(b"one")
    (tmp_path / "b" / "c.txt").write_bytes(b"two")
    h = hashlib.sha256()
    for rel, content in (("a.txt", b"one"), (os.path.join("b", "c.txt"), b"two")):
        h.update(rel.encode() + b"\0" + hashlib.sha256(content).hexdigest().encode() + b"\n")
    assert cache.folder_digest(str(tmp_path)) == h.hexdigest()
    with pytest.raises(ValueError, match="folder"):
        cache.folder_digest(str(tmp_path / "missing"))


def test_second_load_reads_the_cache_and_equals_the_loader(tmp_path, clinc_copy, monkeypatch):
    cdir = str(tmp_path / "cache")
    first = load_dataset("clinc", path=clinc_copy, cache_dir=cdir)
    entries = os.listdir(cdir)
    assert len(entries) == 1 and entries[0].startswith("clinc-")
    # the second load must not run the loader at all
    from modjax import data as data_pkg

    def boom(**_):
        raise AssertionError("the loader ran on a cache hit")

    monkeypatch.setitem(data_pkg.LOADERS, "clinc", boom)
    second = load_dataset("clinc", path=clinc_copy, cache_dir=cdir)
    monkeypatch.undo()
    _same(second, load_clinc(path=clinc_copy))  # the expected side: the loader itself
    _same(first, second)


def test_edited_source_file_or_other_options_or_version_miss(tmp_path, clinc_copy,
                                                             monkeypatch):
    cdir = str(tmp_path / "cache")
    load_dataset("clinc", path=clinc_copy, cache_dir=cdir)
    load_dataset("clinc", path=clinc_copy, cache_dir=cdir, max_len=12)
    assert len(os.listdir(cdir)) == 2
    # append a byte to one source file: a new entry
    some = sorted(os.path.join(r, f) for r, _, fs in os.walk(os.path.join(clinc_copy, "clinc"))
                  for f in fs)[0]
    with open(some, "ab") as f:
        f.write(b"\n")
    os.utime(some, ns=(1, 1))  # even with an old mtime the content decides
    k_edit = cache.cache_key("clinc", os.path.join(clinc_copy, "clinc"), {})
    monkeypatch.setattr(cache, "PREPROCESSING_VERSION", cache.PREPROCESSING_VERSION + 1)
    k_version = cache.cache_key("clinc", os.path.join(clinc_copy, "clinc"), {})
    keys = {n.split("-", 1)[1][:-4] for n in os.listdir(cdir)}
    assert k_edit not in keys and k_version not in keys and k_edit != k_version


def test_corrupt_entry_is_rebuilt_and_cache_can_be_turned_off(tmp_path, clinc_copy,
                                                              monkeypatch):
    cdir = str(tmp_path / "cache")
    ref = load_dataset("clinc", path=clinc_copy, cache_dir=cdir)
    (entry,) = os.listdir(cdir)
    with open(os.path.join(cdir, entry), "wb") as f:
        f.write(b"not a npz file")
    _same(load_dataset("clinc", path=clinc_copy, cache_dir=cdir), ref)
    _same(load_dataset("clinc", path=clinc_copy, cache_dir=cdir), ref)  # rewritten, readable
    off = str(tmp_path / "off")
    monkeypatch.setenv("MODJAX_DATA_CACHE", "none")
    assert cache.default_cache_dir() is None
    load_dataset("clinc", path=clinc_copy)
    load_dataset("clinc", path=clinc_copy, cache_dir="none")
    assert not os.path.exists(off)


def test_options_that_are_not_json_are_not_cached(tmp_path):
    assert cache.cache_key("clinc", str(tmp_path), {"tokenizer": object()}) is None
    calls = []

    def build():
        calls.append(1)
        return "built"

    assert cache.cached_dataset("clinc", str(tmp_path.parent), {"t": object()}, build,
                                cache_dir=str(tmp_path / "c")) == "built"
    assert calls == [1] and not (tmp_path / "c").exists()


def test_entries_keep_every_field_of_the_task(tmp_path):
    """A cached task reads back with its metadata, the target standardisation included."""
    from modjax.data.base import TaskData

    z = np.arange(6, dtype=np.int32).reshape(2, 3)
    task = TaskData(name="t", io="encoder_decoder", x_train=z, y_train=z, x_test=z, y_test=z,
                    class_names=("fr", "de"), vocab_size=6, in_len=3, out_len=3,
                    decoder_input_train=z, decoder_input_test=z, target_vocab={"": 0, "a": 2},
                    target_vocab_size=3, target_standardize="keep_brackets", notes="n")
    path = tmp_path / "entry.npz"
    path.write_bytes(cache._to_bytes(task))
    back = cache._from_file(str(path))
    _same(back, task)
    assert back.target_standardize == "keep_brackets"
    assert back.target_vocab == task.target_vocab and back.target_vocab_size == 3
