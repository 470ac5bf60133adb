"""Course assignments: a student and an instructor notebook for every chapter.

The chapter stays the one source: a gradable exercise's solution is a function decorated with
``@lib.answer(label)`` inside a gated solution (``solution-start`` ... ``solution-end``),
followed by a check cell (tags ``[remove-cell, check]``) calling ``lib.check(label)``; the
check itself is registered in ``lib/assignments/<chapter>.py``. For every executable chapter
of ``_toc.yml`` this module writes, with :func:`tools.export.convert` (the converter that also
writes the reader notebooks):

* ``student/<chapter>.ipynb``: solution prose and solution code removed; each ``@answer``
  function replaced by a stub derived from it with :mod:`ast` (decorator, signature and
  docstring kept, body ``raise NotImplementedError``), so stub and solution cannot drift;
  check cells kept and visible;
* ``instructor/<chapter>.ipynb``: the same with the solutions kept (collapsed);
* ``index.html`` listing them.

Both have ``QUICK = True``, no outputs, a first cell that installs the library where ``lib`` is
missing (Colab) and warns when its version differs from the one stamped in, and the numbers of
a quick run of the chapter in their text (the chapter is executed once in quick mode; the run
is cached by the hash of the chapter and of ``lib``, and its checks must all pass).
Generation fails, naming chapter and label, on a solution cell or ``@answer`` function outside
a solution block, a registered check without an ``@answer`` solution in its chapter, an
``@answer`` without a registered check, and a check cell without a registered check.
Regenerating gives the same bytes.
"""

from __future__ import annotations

import ast
import copy
import hashlib
import html
import json
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

from . import export

ROOT = Path(__file__).resolve().parents[1]
META_KEY = "learning_the_score"
KINDS = ("student", "instructor")
QUICK_LINE = re.compile(r"^QUICK\s*=\s*(True|False)\b", re.M)
VERSION_CHECK = """
if getattr(lib, "__version__", None) != "{version}":
    print("Warning: this notebook was made for version {version} of the book's library; "
          f"version {{getattr(lib, '__version__', '?')}} is installed, so a check may differ.")"""


class AssignError(ValueError):
    """A chapter breaks the gradable-exercise pattern; the message names chapter and label."""


@dataclass
class Gradable:
    """One gradable exercise of a chapter: its label and the student's stub."""

    label: str
    function: str
    stub: str


@dataclass
class Chapter:
    """A chapter read for assignments: its notebook, its gradable exercises, its check cells."""

    name: str  # e.g. "score_matching" (Check.chapter)
    path: Path
    notebook: nbformat.NotebookNode
    gradable: dict[str, Gradable] = field(default_factory=dict)
    checked: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        for cell in self.notebook.cells:
            if cell.cell_type == "markdown" and (m := re.search(r"^# (.+)$", cell.source, re.M)):
                return m.group(1).strip()
        return self.name


# ---------------------------------------------------------------- reading chapters


def toc_chapters(root: Path = ROOT) -> list[Path]:
    """The executable chapters (MyST notebooks with a kernelspec) listed in ``_toc.yml``, in order."""
    import jupytext
    import yaml

    toc = yaml.safe_load((Path(root) / "_toc.yml").read_text())
    files: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    paths = [Path(root) / f"{f.removesuffix('.md')}.md" for f in files]
    return [p for p in paths if p.exists() and jupytext.read(p).metadata.get("kernelspec")]


def answer_functions(source: str) -> list[tuple[str, ast.FunctionDef]]:
    """``(label, function)`` for each top-level function decorated with ``answer("label")``."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []  # cells with IPython magics hold no answers
    found = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for dec in node.decorator_list:
            func = dec.func if isinstance(dec, ast.Call) else None
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name == "answer" and dec.args and isinstance(dec.args[0], ast.Constant):
                found.append((str(dec.args[0].value), node))
    return found


def checked_labels(source: str) -> list[str]:
    """The labels a check cell passes to ``check("label")`` / ``lib.check("label")``."""
    labels = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name == "check":
                labels.append(str(node.args[0].value))
    return labels


def make_stub(source: str, label: str, function: ast.FunctionDef, chapter: str) -> str:
    """Decorator, signature and docstring of ``function`` (as written), body ``raise NotImplementedError``."""
    doc = function.body[0] if function.body else None
    if not (isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant) and isinstance(doc.value.value, str)):
        raise AssignError(f"{chapter}: the @answer function {function.name!r} of {label!r} has no docstring "
                          "(the docstring is the specification the student sees)")
    lines = source.splitlines()
    first = min([d.lineno for d in function.decorator_list] + [function.lineno])
    indent = " " * doc.col_offset
    kept = lines[first - 1:doc.end_lineno]
    message = f"{label}: write this function, then run the check cell below"
    return "\n".join([*kept, f"{indent}raise NotImplementedError({message!r})"])


def read_chapter(path: Path, checks: Mapping[str, object]) -> Chapter:
    """Read a chapter and audit its gradable exercises against the registered ``checks``."""
    import jupytext

    chapter = Chapter(Path(path).stem, Path(path), jupytext.read(path))
    gated: str | None = None
    for cell in chapter.notebook.cells:
        if cell.cell_type == "markdown":
            gated = _gate_after(cell.source, gated, chapter.name)
        elif cell.cell_type == "code":
            _audit_code(chapter, cell, gated)
    if gated:
        raise AssignError(f"{chapter.name}: solution-start {gated!r} has no solution-end")
    own = sorted(label for label, spec in checks.items() if getattr(spec, "chapter", "") == chapter.name)
    for label in own:
        if label not in chapter.gradable:
            raise AssignError(f"{chapter.name}: the registered check {label!r} has no @answer solution "
                              "in a solution block of this chapter (the student would get no stub)")
    for label in chapter.gradable:
        if label not in checks:
            raise AssignError(f"{chapter.name}: @answer({label!r}) has no registered check")
    for label in chapter.checked:
        if label in checks and label not in chapter.gradable:
            raise AssignError(f"{chapter.name}: a check cell calls check({label!r}), but this chapter has no "
                              f"@answer({label!r}) solution")
        if label not in checks:
            raise AssignError(f"{chapter.name}: a check cell calls check({label!r}), but no check is registered "
                              f"for {label!r} (add it to lib/assignments/{chapter.name}.py)")
    return chapter


def _gate_after(text: str, gated: str | None, chapter: str) -> str | None:
    """The gated solution open at the end of a Markdown cell (``None``: outside)."""
    marks = sorted([*export.GATE_START.finditer(text), *export.GATE_END.finditer(text)], key=lambda m: m.start())
    for m in marks:
        if m.re is export.GATE_START:
            if gated:
                raise AssignError(f"{chapter}: solution-start {m['label']!r} inside solution {gated!r}")
            gated = m["label"]
        else:
            if not gated:
                raise AssignError(f"{chapter}: solution-end without solution-start")
            gated = None
    return gated


def _audit_code(chapter: Chapter, cell: nbformat.NotebookNode, gated: str | None) -> None:
    tags = cell.metadata.get("tags", [])
    answers = answer_functions(cell.source)
    first_line = cell.source.strip().splitlines()[0][:60] if cell.source.strip() else ""
    where = f"{chapter.name}: cell {first_line!r}"
    if "check" in tags:
        labels = checked_labels(cell.source)
        if not labels:
            raise AssignError(f"{where} is tagged check but calls no check('label')")
        if gated:
            raise AssignError(f"{chapter.name}: the check cell of {labels[0]!r} lies inside solution {gated!r}; "
                              "put it after solution-end")
        if "remove-cell" not in tags:
            raise AssignError(f"{chapter.name}: the check cell of {labels[0]!r} is not tagged remove-cell "
                              "(it would show on the web page)")
        chapter.checked += labels
        return
    if not gated:
        if "solution" in tags:
            raise AssignError(f"{where} is tagged solution but lies outside a solution block "
                              "(solution-start ... solution-end)")
        if answers:
            raise AssignError(f"{chapter.name}: @answer({answers[0][0]!r}) lies outside a solution block: "
                              "the student notebook would show it")
        return
    if len(answers) > 1:
        raise AssignError(f"{chapter.name}: one solution cell holds {len(answers)} @answer functions "
                          f"({', '.join(a for a, _ in answers)}); give each its own exercise")
    for label, function in answers:
        if label != gated:
            raise AssignError(f"{chapter.name}: @answer({label!r}) lies in the solution of {gated!r}")
        if label in chapter.gradable:
            raise AssignError(f"{chapter.name}: two @answer functions for {label!r}")
        chapter.gradable[label] = Gradable(label, function.name,
                                           make_stub(cell.source, label, function, chapter.name))


# ---------------------------------------------------------------- the quick run


def quick_run(chapter: Chapter, cache_dir: Path | None, timeout: int = 600) -> dict[str, object]:
    """The values glued by a quick run of the chapter (cached by chapter and library hash).

    The run is the instructor's version: every check it runs must pass.
    """
    key = _source_hash(chapter.path)
    cached = Path(cache_dir) / f"{chapter.name}-{key}.json" if cache_dir else None
    if cached is not None and cached.exists():
        glued = json.loads(cached.read_text())
    else:
        glued = _execute_quick(chapter.path, timeout)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            for old in cached.parent.glob(f"{chapter.name}-*.json"):
                old.unlink()
            cached.write_text(json.dumps(glued, sort_keys=True, indent=1))
    statuses = {label: glued.get(f"check:{label}") for label in chapter.gradable}
    failed = {label: status for label, status in statuses.items() if status != "PASS"}
    if failed:
        raise AssignError(f"{chapter.name}: in a quick run the chapter's own solutions do not pass their "
                          f"checks: {failed} (None: the check cell did not run)")
    return glued


def _source_hash(path: Path) -> str:
    digest = hashlib.sha256(Path(path).read_bytes())
    for source in sorted((ROOT / "lib").rglob("*.py")):
        digest.update(source.relative_to(ROOT).as_posix().encode() + source.read_bytes())
    return digest.hexdigest()[:16]


def _execute_quick(path: Path, timeout: int) -> dict[str, object]:
    import os

    import jupytext
    import papermill

    os.environ["BOOK_WIDGETS"] = "0"
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / f"{path.stem}.ipynb", Path(tmp) / f"{path.stem}.out.ipynb"
        nbformat.write(jupytext.read(path), src)
        papermill.execute_notebook(str(src), str(out), parameters={"QUICK": True}, kernel_name="python3",
                                   cwd=str(path.parent), progress_bar=False, execution_timeout=timeout)
        return export.glued_values(nbformat.read(out, as_version=4))


# ---------------------------------------------------------------- writing the notebooks


def built_values(build_dir: Path, chapter: Chapter) -> dict[str, object]:
    """The values the book build glued for ``chapter`` (empty if it was not built).

    A quick run computes most of what the text quotes; a few experiments run at full settings
    only, and for those the notebook quotes the book's own (full-settings) numbers."""
    executed = Path(build_dir) / "jupyter_execute" / "book" / f"{chapter.name}.ipynb"
    return export.executed_glued(executed) if executed.exists() else {}


def assignment_notebooks(chapter: Chapter, index: export.BookIndex, glued: Mapping[str, object], *,
                         install: str = "", repo: str = "", version: str | None = None,
                         ) -> dict[str, nbformat.NotebookNode]:
    """``{"student": ..., "instructor": ...}`` for one audited chapter."""
    version = version or _version()

    def stub(cell: nbformat.NotebookNode, label: str | None) -> nbformat.NotebookNode | None:
        found = answer_functions(cell.source)
        if not found:
            return None
        new = nbformat.v4.new_code_cell(chapter.gradable[found[0][0]].stub, metadata={"tags": ["answer"]})
        return new

    out = {}
    for kind in KINDS:
        nb = export.convert(chapter.notebook, index, glued=glued, install=install,
                            solutions="drop" if kind == "student" else "keep",
                            transform_code=lambda c: _code_cell(c, chapter.name), stub=stub)
        nb.cells[0].source += VERSION_CHECK.format(version=version)
        nb.cells.insert(0, nbformat.v4.new_markdown_cell(_header(chapter, kind, version, repo, index)))
        for i, cell in enumerate(nb.cells):  # stable ids: regenerating gives the same bytes
            cell["id"] = f"cell-{i}"
        nb.metadata = {"kernelspec": nb.metadata["kernelspec"],
                       "language_info": {"name": "python"},
                       META_KEY: {"chapter": chapter.name, "kind": kind, "version": version,
                                  "labels": sorted(chapter.gradable)}}
        out[kind] = nb
    return out


def _code_cell(cell: nbformat.NotebookNode, chapter: str) -> nbformat.NotebookNode:
    """No outputs; ``QUICK = True``; check cells visible (they stay hidden on the web page only)."""
    cell = copy.deepcopy(cell)
    cell.outputs, cell.execution_count = [], None
    tags = cell.metadata.get("tags", [])
    if "parameters" in tags:
        if not QUICK_LINE.search(cell.source):
            raise AssignError(f"{chapter}: the parameters cell sets no QUICK")
        cell.source = QUICK_LINE.sub("QUICK = True", cell.source, count=1)
    if "check" in tags:
        cell.metadata["tags"] = [t for t in tags if t != "remove-cell"]
    return cell


def _header(chapter: Chapter, kind: str, version: str, repo: str, index: export.BookIndex) -> str:
    what = ("Write each function that still raises `NotImplementedError`, then run the check cell after it: "
            "it compares your function with the library's reference on random inputs and says PASS, "
            "NOT ATTEMPTED, WRONG (with the input, the expected and your value) or ERROR. "
            "Passing the public checks does not guarantee full marks: the grader uses other inputs."
            if kind == "student" else
            "Instructor version: the solutions are kept (collapsed); the student version has stubs in their place.")
    labels = ", ".join(_exercise_name(index, label) for label in chapter.gradable) or "none"
    badge = ""
    if repo and kind == "student":
        owner_name = repo.removeprefix("https://github.com/")
        url = f"https://colab.research.google.com/github/{owner_name}/blob/gh-pages/assignments/{chapter.name}.ipynb"
        badge = f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({url})\n\n"
    return (f"{badge}*Learning the Score*, chapter “{chapter.title}”: {kind} notebook for version {version} "
            f"of the book's library, with `QUICK = True` (the numbers in the text are those of a quick run).\n\n"
            f"Gradable exercises: {labels}. {what}")


def _exercise_name(index: export.BookIndex, label: str) -> str:
    target = index.labels.get(label)
    name = target.text.split(" (")[0] if target and target.text != label else ""
    return f"{name} (`{label}`)" if name else f"`{label}`"


def _version() -> str:
    import lib

    return str(lib.__version__)


def index_page(chapters: Iterable[Chapter], kinds: Iterable[str] = KINDS, prefix: Mapping[str, str] | None = None,
               ) -> str:
    """A small HTML page listing the notebooks (``prefix[kind]``: the folder of each kind)."""
    kinds = list(kinds)
    prefix = prefix or {kind: f"{kind}/" for kind in kinds}
    rows = []
    for ch in chapters:
        links = " · ".join(f'<a href="{prefix[k]}{ch.name}.ipynb">{k}</a>' for k in kinds)
        labels = ", ".join(f"<code>{html.escape(label)}</code>" for label in ch.gradable) or "none yet"
        rows.append(f"<tr><td>{html.escape(ch.title)}</td><td>{links}</td><td>{labels}</td></tr>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            "<meta name=\"color-scheme\" content=\"light dark\"><link rel=\"icon\" href=\"data:,\">"
            "<style>body{font-family:sans-serif;max-width:60rem;margin:1rem auto;padding:0 1rem}"
            "td,th{padding:.3em .8em;text-align:left;vertical-align:top;overflow-wrap:anywhere}</style>"
            "<title>Learning the Score: assignments</title></head><body>\n"
            "<h1>Learning the Score: assignment notebooks</h1>\n"
            "<p>One notebook per chapter, with <code>QUICK = True</code>. Each gradable exercise asks for a "
            "function; the check cell after it runs public checks on random inputs.</p>\n"
            "<table>\n<tr><th>Chapter</th><th>Notebook</th><th>Gradable exercises</th></tr>\n"
            + "\n".join(rows) + "\n</table>\n</body></html>\n")


def generate(paths: Iterable[Path], out_dir: Path, index: export.BookIndex, *,
             glued_for: Callable[[Chapter], Mapping[str, object]], install: str = "", repo: str = "",
             checks: Mapping[str, object] | None = None, jobs: int = 1) -> list[Chapter]:
    """Audit every chapter (all first: a broken one fails before anything runs), then write
    ``out_dir/{student,instructor}/<chapter>.ipynb`` and ``out_dir/index.html``."""
    if checks is None:
        from lib.assignments import registered_checks

        checks = registered_checks()
    chapters = [read_chapter(p, checks) for p in paths]
    with ThreadPoolExecutor(max(1, jobs)) as pool:  # the quick runs are separate kernels
        glued = list(pool.map(glued_for, chapters))
    out_dir = Path(out_dir)
    for kind in KINDS:
        (out_dir / kind).mkdir(parents=True, exist_ok=True)
    for chapter, values in zip(chapters, glued):
        try:
            notebooks = assignment_notebooks(chapter, index, values, install=install, repo=repo)
        except export.ExportError as exc:
            raise AssignError(f"{chapter.name}: {exc}") from exc
        for kind, nb in notebooks.items():
            nbformat.write(nb, out_dir / kind / f"{chapter.name}.ipynb")
    (out_dir / "index.html").write_text(index_page(chapters), encoding="utf-8")
    return chapters


def publish(chapters: Iterable[Chapter], out_dir: Path, site_dir: Path) -> Path:
    """Copy the student notebooks (never the instructor's) and their index into ``site_dir``."""
    chapters = list(chapters)
    site_dir = Path(site_dir)
    site_dir.mkdir(parents=True, exist_ok=True)
    for ch in chapters:
        shutil.copyfile(Path(out_dir) / "student" / f"{ch.name}.ipynb", site_dir / f"{ch.name}.ipynb")
    (site_dir / "index.html").write_text(index_page(chapters, ["student"], {"student": ""}), encoding="utf-8")
    return site_dir


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description="Write student and instructor notebooks for every chapter.")
    p.add_argument("--build", default=Path("_build"), type=Path, help="built book (for numbers and links)")
    p.add_argument("--out", default=None, type=Path, help="default: <build>/assignments")
    p.add_argument("--site", default=None, type=Path, help="also copy the student notebooks there")
    p.add_argument("--chapters", nargs="*", type=Path, help="default: every executable chapter of _toc.yml")
    p.add_argument("--jobs", default=2, type=int, help="quick runs in parallel")
    p.add_argument("--bib", default=[Path("references.bib")], type=Path, nargs="*")
    args = p.parse_args(argv)
    from .sphinx_ext import pages_url, repo_url

    if not (args.build / "html" / "objects.inv").exists():
        p.error(f"no built book in {args.build}: run make book first (numbers and links come from it)")
    repo = repo_url()
    index = export.load_index(args.build / "html", args.bib, pages_url(repo) if repo else "")
    out = args.out or args.build / "assignments"
    try:
        chapters = generate(args.chapters or toc_chapters(), out, index, install=f"git+{repo}" if repo else "",
                            repo=repo, jobs=args.jobs,
                            glued_for=lambda ch: {**built_values(args.build, ch),
                                                  **quick_run(ch, out / ".quick-runs")})
    except (AssignError, export.ExportError) as exc:
        print(f"make assignments failed: {exc}")
        return 1
    if args.site:
        publish(chapters, out, args.site)
    print(f"{len(chapters)} chapters: {out}/student, {out}/instructor, {out}/index.html"
          + (f"; student notebooks copied to {args.site}" if args.site else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
