"""Every code block of README.md and docs/*.md runs, on small data.

Blocks tagged ``python`` run in order in one namespace per page; blocks tagged ``bash`` run in
order in one ``bash -e`` per page (all pages' shells at once, while the Python blocks run);
each page in a fresh temporary directory, with this checkout on ``PYTHONPATH``. ``text``
blocks are output or layouts. An HTML comment right above a block::

    <!-- docs-test
    OLD => NEW
    -->

is applied to it as literal replacements, one per line (``{root}`` is the checkout): the
documented mechanism for blocks that would run for minutes at full size
(docs/usage.md#docs-that-run). The README's newcomer recipe (``modjax train`` then
``modjax decompose``) is checked to leave its report behind.
"""
import os
import re
import subprocess
import sys
import warnings

import pytest
from tests.ci import in_ci

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGES = ["README.md"] + sorted(
    os.path.join("docs", f) for f in os.listdir(os.path.join(ROOT, "docs")) if f.endswith(".md"))
RUN = {"python": "python", "bash": "bash", "sh": "bash", "shell": "bash"}
NOT_RUN = {"text"}
_FENCE = re.compile(r"^```(\S*)\s*$")
_DIRECTIVE = re.compile(r"<!--\s*docs-test\s*\n(.*?)-->\s*$", re.S)


def extract_blocks(text: str):
    """``[(lang, code, replacements, line)]`` for every fenced block of a markdown page.

    ``replacements`` are ``(old, new)`` pairs from a ``<!-- docs-test ... -->`` comment that
    ends on the line above the fence (blank lines allowed between).
    """
    lines = text.split("\n")
    out, i = [], 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        lang, start = m.group(1), i
        j = i + 1
        while j < len(lines) and not lines[j].startswith("```"):
            j += 1
        if j == len(lines):
            raise ValueError(f"unclosed code block at line {start + 1}")
        code = "\n".join(lines[i + 1:j]) + "\n"
        k = start - 1
        while k >= 0 and not lines[k].strip():
            k -= 1
        reps = []
        if k >= 0 and lines[k].strip() == "-->":
            b = k
            while b >= 0 and not lines[b].lstrip().startswith("<!--"):
                b -= 1
            dm = _DIRECTIVE.search("\n".join(lines[b:k + 1]))
            if dm:
                for ln in dm.group(1).strip().split("\n"):
                    if "=>" not in ln:
                        raise ValueError(f"line {b + 1}: a docs-test line is 'OLD => NEW', got "
                                         f"{ln!r}")
                    old, new = ln.split(" => ", 1) if " => " in ln else ln.split("=>", 1)
                    reps.append((old.strip(), new.strip()))
        out.append((lang, code, reps, start + 1))
        i = j + 1
    return out


def prepared(code: str, reps) -> str:
    """``code`` with the docs-test replacements applied; each must match somewhere."""
    for old, new in reps:
        if old not in code:
            raise AssertionError(f"docs-test replacement {old!r} matches nothing in:\n{code}")
        code = code.replace(old, new.replace("{root}", ROOT))
    return code


def _blocks(page):
    with open(os.path.join(ROOT, page), encoding="utf-8") as f:
        return extract_blocks(f.read())


def _env():
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"), MPLBACKEND="Agg")
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.setdefault("JAX_COMPILATION_CACHE_DIR", os.environ.get(
        "MODJAX_JAX_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "modjax", "jax")))
    env.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
    return env


def test_extractor_reads_directives_and_tags():
    text = ("intro\n\n<!-- docs-test\nepochs=10 => epochs=1\n{x} => {root}\n-->\n"
            "```python\nfit(epochs=10)\n```\n\n```text\nout\n```\n")
    blocks = extract_blocks(text)
    assert [(b[0], b[2]) for b in blocks] == [
        ("python", [("epochs=10", "epochs=1"), ("{x}", "{root}")]), ("text", [])]
    assert prepared("fit(epochs=10)", [("epochs=10", "epochs=1")]) == "fit(epochs=1)"
    with pytest.raises(AssertionError, match="matches nothing"):
        prepared("fit()", [("epochs=10", "epochs=1")])
    with pytest.raises(ValueError, match="unclosed"):
        extract_blocks("```python\nx = 1\n")


@pytest.mark.parametrize("page", PAGES)
def test_every_block_is_tagged(page):
    """Code cannot hide in an untagged block: every fence says python, bash or text."""
    for lang, code, _, line in _blocks(page):
        assert lang in RUN or lang in NOT_RUN, (
            f"{page}:{line}: block tagged {lang!r}; use python or bash (run by this test) or "
            "text (output, layouts)")


@pytest.fixture(scope="module")
def shells(tmp_path_factory):
    """Start every page's bash blocks at once; ``{page: (Popen, workdir)}``."""
    procs = {}
    for page in PAGES:
        script = [prepared(code, reps) for lang, code, reps, _ in _blocks(page)
                  if RUN.get(lang) == "bash"]
        if not script:
            continue
        wd = tmp_path_factory.mktemp(os.path.basename(page).replace(".", "_") + "_sh")
        procs[page] = (subprocess.Popen(
            ["bash", "-e", "-o", "pipefail", "-c", "\n".join(script)], cwd=wd, env=_env(),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), wd)
    yield procs
    for proc, _ in procs.values():  # a deselected or failed page: stop its shell
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _needs_data(code: str) -> bool:
    return "default_data_dir()" in code


@pytest.mark.parametrize("page", PAGES)
def test_python_blocks_run(page, shells, tmp_path, monkeypatch):
    blocks = [(code, reps, line) for lang, code, reps, line in _blocks(page)
              if RUN.get(lang) == "python"]
    if not blocks:
        return
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    ns = {"__name__": "__docs__"}
    for code, reps, line in blocks:
        code = prepared(code, reps)
        if _needs_data(code):
            from modjax.data.base import default_data_dir

            if not os.path.isdir(os.path.join(default_data_dir(), "keras_models")):
                if in_ci():
                    pytest.fail(f"{page}:{line} needs the shared data (CI is set)")
                continue  # the one block that reads the authors' Keras files
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # classes without examples (tiny data)
            exec(compile(code, f"{page}:{line}", "exec"), ns)  # noqa: S102 - the docs' code


@pytest.mark.parametrize("page", PAGES)
def test_bash_blocks_run(page, shells):
    if page not in shells:
        return
    proc, wd = shells[page]
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, f"{page}: exit {proc.returncode}\nstdout:\n{out}\nstderr:\n{err}"
    assert "Traceback" not in err, err
    if page == "README.md":  # the newcomer recipe: train, then decompose, then the report
        report = wd / "runs" / "topics-lstm1-report" / "report.md"
        assert os.path.isfile(wd / "runs" / "topics-lstm1" / "format.json")
        assert report.is_file(), out
        md = report.read_text()
        assert "# modjax decomposition: topics-lstm1" in md and "composed accuracy" in md
        assert "topics-lstm1-report" in out  # the ls line


@pytest.mark.parametrize("value,expected", [("", False), ("false", False), ("False", False),
                                            ("0", False), ("no", False), ("true", True),
                                            ("1", True), ("yes", True)])
def test_ci_flag(monkeypatch, value, expected):
    """``CI=false`` or an empty ``CI`` is not CI (the tests then skip without shared data)."""
    monkeypatch.setenv("CI", value)
    assert in_ci() is expected
    monkeypatch.delenv("CI")
    assert in_ci() is False


ANCHORS = ("sampling", "statistics", "removal", "masks", "channelling", "vote", "metrics",
           "artifact", "encoder-decoder", "reuse")
SWEPT = ("modjax", "experiments", "benchmarks", "docs", "README.md")


def _github_anchor(heading: str) -> str:
    """The anchor GitHub gives a markdown heading: lower case, punctuation dropped, spaces to -."""
    s = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return s.replace(" ", "-")


def _repo_files():
    for top in SWEPT:
        path = os.path.join(ROOT, top)
        if os.path.isfile(path):
            yield path
            continue
        for d, _, files in os.walk(path):
            for f in files:
                if f.endswith((".py", ".md", ".txt", ".csv", ".json")):
                    yield os.path.join(d, f)


def test_method_anchors_exist_and_links_resolve():
    with open(os.path.join(ROOT, "docs", "method.md"), encoding="utf-8") as f:
        text = f.read()
    anchors = {_github_anchor(m) for m in re.findall(r"^#{1,6} (.+)$", text, re.M)}
    assert set(ANCHORS) <= anchors, sorted(set(ANCHORS) - anchors)
    bad = []
    for path in list(_repo_files()) + [os.path.join(ROOT, "tests", "test_docs.py")]:
        with open(path, encoding="utf-8") as f:
            for m in re.finditer(r"method\.md#([\w\-]+)", f.read()):
                if m.group(1) not in anchors:
                    bad.append((os.path.relpath(path, ROOT), m.group(1)))
    assert not bad, bad


def test_no_references_to_a_missing_document():
    """The method is described in docs/method.md; nothing points to a document outside the
    repository by section number."""
    needle = "spec " + "\u00a7"
    found = []
    for path in _repo_files():
        if os.path.relpath(path, ROOT) == os.path.join("docs", "method.md"):
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            for i, line in enumerate(f, 1):
                if needle in line:
                    found.append(f"{os.path.relpath(path, ROOT)}:{i}: {line.strip()[:80]}")
    assert not found, "\n".join(found)
