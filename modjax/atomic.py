"""Safe saving of artifact directories: refuse what is not ours, replace crash-safely.

An *artifact directory* is one that modjax writes as a whole (a model checkpoint, a
decomposition): a fixed set of files, one of them ``format.json`` naming the artifact's kind
(``{"format": KIND, ...}``). :func:`write_artifact_dir` writes one:

1. **Ownership.** An existing ``path`` is replaced only if it holds an artifact of the same kind
   (its ``format.json`` names ``kind`` and it holds none but the artifact's files) and the
   caller passed ``overwrite=True``; an empty directory may be written into. Anything else (a
   file, another kind of artifact, a folder of the user's) is refused with ``ValueError``
   before anything is written.
2. **Staging.** The files are written to a staging directory next to ``path``
   (``.NAME.tmp-PID-XXXX``), every file is ``fsync``-ed, then the staging directory.
3. **Replacement**, in two renames with the parent directory ``fsync``-ed after each:
   ``path -> .NAME.old`` (only when replacing), ``staging -> path``; then ``.NAME.old`` is
   removed.

A crash at any instant leaves ``path`` holding the old or the new complete artifact, except
between the two renames, where ``path`` is missing and ``.NAME.old`` holds the old one complete.
:func:`recover` puts it back; the loaders (``load_model``, ``load_decomposition``) call it
first (reading ``.NAME.old`` in place when the parent is read-only), and so does the next save.
Staging directories of dead processes are removed by the next save to the same path.

Directories are created with mode ``0o777`` and files with ``0o666``, less the umask, as any
file the user writes (``0755``/``0644`` under umask ``022``).

Single files (reports, results, cache entries) go through :func:`write_file` /
:func:`write_text` / :func:`write_bytes`: a synced temporary sibling, then ``os.replace``, so a
reader never sees half a file.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Callable, Iterable, Optional

def write_file(path: str, write_fn: Callable) -> None:
    """Call ``write_fn(f)`` on a binary file that becomes ``path`` atomically: a temporary
    sibling, flushed and ``fsync``-ed, given the umask's permissions, then ``os.replace``-d."""
    path = os.path.abspath(path)
    d = os.path.dirname(path)
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1], dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())  # the data is on disk before the rename makes it visible
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 -> what open() would have given
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_text(path: str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`write_file`)."""
    write_file(path, lambda f: f.write(text.encode("utf-8")))


def write_bytes(path: str, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (:func:`write_file`)."""
    write_file(path, lambda f: f.write(data))


#: The steps of :func:`write_artifact_dir`, in order. :data:`_after_step` (a test hook) is
#: called with each name once the step is done.
STEPS = ("staging_created", "files_written", "files_synced", "staging_synced",
         "old_moved_aside", "new_in_place", "old_removed")

#: Test hook: ``f(step_name)`` after every step of :func:`write_artifact_dir` (crash injection).
_after_step: Optional[Callable[[str], None]] = None


def _step(name: str) -> None:
    if _after_step is not None:
        _after_step(name)


def _fsync_path(p: str, directory: bool = False) -> None:
    try:
        fd = os.open(p, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    except OSError:
        if directory:  # a platform that cannot open directories (Windows): nothing to sync
            return
        raise
    try:
        os.fsync(fd)
    except OSError:  # some filesystems cannot fsync a directory; the rename still is atomic
        if not directory:
            raise
    finally:
        os.close(fd)


def _aside(path: str) -> str:
    """Where the old artifact waits between the two renames: ``DIR/.NAME.old``."""
    parent, name = os.path.split(path)
    return os.path.join(parent, f".{name}.old")


def artifact_kind(path: str) -> Optional[str]:
    """The ``format`` named by ``path/format.json``, or ``None`` (no, or an unreadable, file)."""
    try:
        with open(os.path.join(path, "format.json")) as f:
            fmt = json.load(f)
    except (OSError, ValueError):
        return None
    kind = fmt.get("format") if isinstance(fmt, dict) else None
    return kind if isinstance(kind, str) else None


def recover(path: str) -> str:
    """Repair ``path`` after a save that crashed between its two renames; returns the
    directory to read (``path``, or ``.NAME.old`` where the parent cannot be written).

    * ``path`` missing, ``.NAME.old`` present: the old artifact is renamed back.
    * both present: the new artifact is in place; the stale ``.NAME.old`` is removed.
    """
    path = os.path.abspath(path)
    old = _aside(path)
    if not os.path.isdir(old):
        return path
    if os.path.lexists(path):
        shutil.rmtree(old, ignore_errors=True)
        return path
    try:
        os.replace(old, path)
    except OSError:
        return old  # read-only parent: read the old artifact where it is
    return path


def _remove_dead_staging(parent: str, name: str) -> None:
    prefix = f".{name}.tmp-"
    try:
        entries = os.listdir(parent)
    except OSError:
        return
    for e in entries:
        if not e.startswith(prefix):
            continue
        pid = e[len(prefix):].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(parent, e), ignore_errors=True)
        except OSError:
            pass  # alive (another user's): leave it


def check_target(path: str, kind: str, files: Iterable[str], overwrite: bool) -> bool:
    """``ValueError`` unless ``path`` may receive an artifact of ``kind``; True if it holds one
    (to be replaced).

    Allowed: ``path`` missing, an empty directory, or (with ``overwrite``) a directory holding
    an artifact of ``kind`` and no file but ``files``.
    """
    if not os.path.lexists(path):
        return False
    if not os.path.isdir(path) or os.path.islink(path):
        raise ValueError(f"path {path!r} exists and is not a directory; refusing to replace it "
                         f"with a {kind} directory")
    entries = sorted(os.listdir(path))
    if not entries:
        return False
    got = artifact_kind(path)
    if got != kind:
        what = f"a {got} artifact" if got else "files that are not a modjax artifact"
        raise ValueError(f"path {path!r} holds {what} ({', '.join(entries[:5])}"
                         f"{', ...' if len(entries) > 5 else ''}); refusing to replace it with a "
                         f"{kind} directory")
    extra = sorted(set(entries) - set(files))
    if extra:
        raise ValueError(f"path {path!r} holds a {kind} artifact and also other files "
                         f"({', '.join(extra[:5])}); refusing to replace it")
    if not overwrite:
        raise ValueError(f"path {path!r} already holds a {kind} artifact; pass overwrite=True "
                         "to replace it")
    return True


def write_artifact_dir(path: str, kind: str, files: Iterable[str],
                       write_fn: Callable[[str], None], *, overwrite: bool = False) -> None:
    """Write an artifact directory safely (see the module docstring).

    Args:
      path: the target directory.
      kind: the artifact's kind, as ``write_fn`` writes it to ``format.json``.
      files: the names of the files ``write_fn`` writes (a directory holding others is not
        replaced).
      write_fn: ``write_fn(staging_dir)`` writes the files into ``staging_dir``.
      overwrite: replace an existing artifact of the same kind.

    Raises:
      ValueError: ``path`` holds something that may not be replaced (see
        :func:`check_target`).
    """
    files = tuple(files)
    path = os.path.abspath(path)
    parent, name = os.path.split(path)
    os.makedirs(parent, exist_ok=True)
    recover(path)
    replacing = check_target(path, kind, files, overwrite)
    _remove_dead_staging(parent, name)
    staging = os.path.join(parent, f".{name}.tmp-{os.getpid()}-{os.urandom(4).hex()}")
    os.mkdir(staging, 0o777)  # the umask applies, as for any directory the user makes
    try:
        _step("staging_created")
        write_fn(staging)
        written = sorted(os.listdir(staging))
        if set(written) != set(files):
            raise RuntimeError(f"internal: wrote {written}, expected {sorted(files)}")
        _step("files_written")
        for f in written:
            _fsync_path(os.path.join(staging, f))
        _step("files_synced")
        _fsync_path(staging, directory=True)
        _step("staging_synced")
        old = _aside(path)
        if replacing:
            os.replace(path, old)
            _fsync_path(parent, directory=True)
            _step("old_moved_aside")
        os.replace(staging, path)
        _fsync_path(parent, directory=True)
        _step("new_in_place")
        if replacing:
            shutil.rmtree(old, ignore_errors=True)
            _step("old_removed")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        recover(path)  # an error between the renames: the old artifact goes back
        raise
