"""Run a chapter through papermill and read back what it glued.

Chapters are MyST Markdown notebooks in ``book/``; papermill needs ``.ipynb``, so the
chapter is converted with jupytext into a temporary folder and executed with ``book/`` as
its working directory (as the book build does), with ``BOOK_WIDGETS=0`` so widgets draw
their static figure instead of waiting for a browser.
"""

from __future__ import annotations

import ast
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import jupytext
import nbformat
import papermill

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"


@dataclass
class ExecutedChapter:
    """An executed chapter: its glued values, the notebook, and the wall time it took."""

    name: str
    glued: dict[str, object]
    notebook: nbformat.NotebookNode
    seconds: float

    def __getitem__(self, key: str) -> object:
        if key not in self.glued:
            raise KeyError(f"{self.name} glued no value named {key!r}; it glued {sorted(self.glued)}")
        return self.glued[key]

    @property
    def figures(self) -> int:
        """How many images the chapter's cells displayed."""
        return sum("image/png" in out.get("data", {}) for cell in self.notebook.cells
                   for out in cell.get("outputs", []))

    @property
    def stderr(self) -> list[str]:
        """What the chapter's cells wrote to stderr (warnings, progress bars): readers see it on the page."""
        return [out.get("text", "") for cell in self.notebook.cells for out in cell.get("outputs", [])
                if out.get("output_type") == "stream" and out.get("name") == "stderr"]

    def cells_tagged(self, tag: str) -> list[nbformat.NotebookNode]:
        return [c for c in self.notebook.cells if tag in c.get("metadata", {}).get("tags", [])]

    @property
    def checks(self) -> dict[str, object]:
        """The status each gradable exercise's check cell reported, by exercise label."""
        return {k.removeprefix("check:"): v for k, v in self.glued.items() if k.startswith("check:")}

    def assert_checks_pass(self, at_least: int = 2) -> None:
        """The chapter's own solutions pass every check it runs (at least ``at_least`` of them)."""
        assert len(self.checks) >= at_least, f"{self.name} ran {len(self.checks)} checks: {self.checks}"
        failed = {k: v for k, v in self.checks.items() if v != "PASS"}
        assert not failed, f"{self.name}: solutions fail their checks: {failed}"


def glued_values(nb: nbformat.NotebookNode) -> dict[str, object]:
    """Every ``glue(name, value)`` of an executed notebook, parsed back from its text."""
    found: dict[str, object] = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            meta = out.get("metadata", {}).get("scrapbook")
            if not meta:
                continue
            prefix = meta.get("mime_prefix", "")
            text = out.get("data", {}).get(prefix + "text/plain")
            if text is None:
                continue
            try:
                found[meta["name"]] = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                found[meta["name"]] = text
    return found


def run_chapter(name: str, *, quick: bool = True, parameters: dict | None = None,
                timeout: int = 600) -> ExecutedChapter:
    """Execute ``book/<name>.md`` with ``QUICK=quick`` (and any other parameters)."""
    source = BOOK / f"{name}.md"
    if not source.exists():
        raise FileNotFoundError(source)
    os.environ["BOOK_WIDGETS"] = "0"
    params = {"QUICK": quick, **(parameters or {})}
    with tempfile.TemporaryDirectory() as tmp:
        src, out = Path(tmp) / f"{name}.ipynb", Path(tmp) / f"{name}.out.ipynb"
        nbformat.write(jupytext.read(source), src)
        start = time.perf_counter()
        papermill.execute_notebook(str(src), str(out), parameters=params, kernel_name="python3",
                                   cwd=str(BOOK), progress_bar=False, execution_timeout=timeout)
        seconds = time.perf_counter() - start
        nb = nbformat.read(out, as_version=4)
    return ExecutedChapter(name, glued_values(nb), nb, seconds)
