"""Turn a MyST chapter into a plain Jupyter notebook that Jupyter, JupyterLab and Colab render.

The book's chapters use MyST syntax that only the book build understands: glued numbers
(``{glue:text}``), citations, cross-references, theorem/proof/exercise directives and
solutions. :func:`convert` rewrites the Markdown cells of a chapter notebook into plain
Jupyter Markdown:

* ``{glue:text}`name:fmt``` becomes the value glued by an executed run, formatted;
* ``{cite:t}`` / ``{cite:p}`` become "Author (year)" / "(Author, year)";
* ``{ref}``, ``{numref}``, ``{prf:ref}``, ``{eq}``, ``{doc}`` become links to the page of the
  online book (plain text when no online address is known), with the number the book shows;
* theorem, proof, definition, exercise boxes become blocks with a bold heading;
* solutions stay in a collapsed HTML ``<details>`` block (``solutions="keep"``), or are
  removed with every solution code cell (``solutions="drop"``, for a student version);
  gated solutions (``solution-start`` ... ``solution-end``) keep their code cells runnable
  and collapsed (``jupyter.source_hidden``).

What the converter needs to know about the built book (numbers, pages, anchors, the
bibliography) is a :class:`BookIndex`, read from a built HTML site by :func:`load_index`.
:func:`export_book` writes one reader notebook per executed chapter (``make book`` does this
into ``_build/html/notebooks``).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat

INSTALL_CELL = """\
# Run this first in Colab or anywhere the book's library is not installed.
try:
    import lib  # noqa: F401
except ImportError:
    %pip install -q "{pip_target}"
    import lib  # noqa: F401"""
NO_INSTALL_CELL = """\
# This notebook needs the book's library `lib`: install the book's repository first,
# e.g. `pip install "git+https://github.com/OWNER/NAME"`.
import lib  # noqa: F401"""

BOX_KINDS = {"prf:theorem": "Theorem", "prf:proposition": "Proposition", "prf:lemma": "Lemma",
             "prf:corollary": "Corollary", "prf:definition": "Definition", "prf:remark": "Remark",
             "prf:example": "Example", "prf:assumption": "Assumption", "prf:proof": "Proof",
             "exercise": "Exercise"}
# A fenced directive: ```{name} argument / :option: value lines / body / closing fence.
DIRECTIVE = re.compile(r"^(?P<fence>`{3,}|:{3,})\{(?P<name>[\w:-]+)\}[ \t]*(?P<arg>[^\n]*)\n"
                       r"(?P<body>.*?)^(?P=fence)[ \t]*$\n?", re.S | re.M)
OPTION = re.compile(r"^:(?P<key>[\w-]+):[ \t]*(?P<value>[^\n]*)$")
ROLE = re.compile(r"\{(?P<role>[\w:-]+)\}`(?P<text>[^`]*)`")
TARGET = re.compile(r"^\((?P<label>[^)\s]+)\)=[ \t]*$", re.M)
COMMENT = re.compile(r"^%[^\n]*\n?", re.M)


@dataclass
class Target:
    """Where a label points in the built book and what the book calls it."""

    page: str  # e.g. "book/score_matching.html"
    anchor: str  # HTML id on that page
    text: str  # e.g. "Exercise 1.3", "Theorem 2.1 (Tweedie)", "Fig. 1.2", "(1.4)"


@dataclass
class BookIndex:
    """Labels, citations and the online address of the built book."""

    labels: dict[str, Target] = field(default_factory=dict)
    citations: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (authors, year)
    base_url: str = ""  # online book root, e.g. "https://owner.github.io/name/"; "" = no links

    def link(self, text: str, label: str | None = None, page: str | None = None) -> str:
        """Markdown link to ``label`` (or ``page``) of the online book, or ``text`` alone."""
        if label is not None:
            target = self.labels.get(label)
            if target is None:
                raise KeyError(f"unknown label {label!r}")
            page = f"{target.page}#{target.anchor}"
        if not self.base_url or page is None:
            return text
        return f"[{text}]({self.base_url.rstrip('/')}/{page})"


class ExportError(ValueError):
    """The chapter uses syntax the converter cannot translate faithfully."""


# ---------------------------------------------------------------- reading the built book


def load_index(html_dir: Path, bibfiles: Iterable[Path] = (), base_url: str = "") -> BookIndex:
    """Read labels (with the numbers the book shows) from a built HTML site and the
    citations from BibTeX files."""
    from sphinx.util.inventory import InventoryFile

    html_dir = Path(html_dir)
    with open(html_dir / "objects.inv", "rb") as f:
        inv = InventoryFile.load(f, "", lambda base, uri: uri)
    texts: dict[str, dict[str, str]] = {}
    index = BookIndex(base_url=base_url)
    for kind, entries in inv.items():
        if kind not in ("std:label", "std:doc", "math:numbered"):
            continue
        for name, (_, _, uri, display) in entries.items():
            page, _, anchor = uri.partition("#")
            if page not in texts:
                texts[page] = _numbered_texts(html_dir / page) if (html_dir / page).exists() else {}
            text = texts[page].get(anchor) or (display if display != "-" else name)
            if kind == "math:numbered":
                text = texts[page].get(anchor, f"({name})")
            index.labels.setdefault(name, Target(page, anchor, text))
    for page, found in texts.items():  # prf and exercise labels: the HTML id is the label
        for anchor, text in found.items():
            index.labels.setdefault(anchor, Target(page, anchor, text))
    for bib in bibfiles:
        index.citations.update(read_citations(bib))
    return index


def _numbered_texts(page: Path) -> dict[str, str]:
    """id -> the title the book shows for numbered boxes, figures, equations and sections."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
    found = {}
    for el in soup.select("div.admonition[id], div.proof[id], div.exercise[id]"):
        title = el.select_one(".admonition-title")
        if title:
            found[el["id"]] = " ".join(title.get_text(" ", strip=True).split())
    for el in soup.select("figure[id], div.figure[id]"):
        num = el.select_one(".caption-number")
        if num:
            found[el["id"]] = num.get_text(strip=True)
    for el in soup.select("span.eqno"):
        parent = el.find_parent(id=True)
        if parent:
            found[parent["id"]] = el.get_text(strip=True).rstrip("#¶ ").strip()
    for el in soup.select("section[id]"):
        head = el.find(re.compile("^h[1-6]$"))
        if head:
            found.setdefault(el["id"], head.get_text(" ", strip=True).rstrip("#¶ ").strip())
    return {k: v.replace("\u00a0", " ").strip() for k, v in found.items()}


def read_citations(bibfile: Path) -> dict[str, tuple[str, str]]:
    """key -> ("Author", "year") as the book's author-year style shows it."""
    from pybtex.database import parse_file

    out = {}
    for key, entry in parse_file(str(bibfile)).entries.items():
        names = [_plain(" ".join(p.last_names)) for p in entry.persons.get("author", [])]
        if len(names) > 2:
            authors = f"{names[0]} et al."
        else:
            authors = " and ".join(names) or key
        out[key] = (authors, entry.fields.get("year", "n.d."))
    return out


def _plain(tex: str) -> str:
    """Strip BibTeX accents and braces: Hyv{\\"a}rinen -> Hyvärinen."""
    accents = {'"': "\u0308", "'": "\u0301", "`": "\u0300", "^": "\u0302", "~": "\u0303", "c": "\u0327"}
    import unicodedata

    tex = re.sub(r"\{?\\([\"'`^~c])\{?\s*([A-Za-z])\}?\}?",
                 lambda m: unicodedata.normalize("NFC", m.group(2) + accents[m.group(1)]), tex)
    return tex.replace("{", "").replace("}", "")


# ---------------------------------------------------------------- glued values


def glued_values(nb: nbformat.NotebookNode) -> dict[str, object]:
    """Every ``glue(name, value)`` of an executed notebook, parsed back from its text."""
    found: dict[str, object] = {}
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            meta = out.get("metadata", {}).get("scrapbook")
            if meta:
                _parse_glued(found, meta["name"], out.get("data", {}).get(meta.get("mime_prefix", "") + "text/plain"))
    return found


def glued_from_build(path: Path) -> dict[str, object]:
    """The values myst-nb saved beside an executed notebook (``<chapter>.glue.json``); the
    build removes them from the notebook's outputs."""
    found: dict[str, object] = {}
    for name, out in json.loads(Path(path).read_text()).items():
        _parse_glued(found, name, out.get("data", {}).get("text/plain"))
    return found


def executed_glued(executed: Path, nb: nbformat.NotebookNode | None = None) -> dict[str, object]:
    """The values glued by a chapter the book build executed (its notebook and its glue file)."""
    executed = Path(executed)
    glued = glued_values(nb if nb is not None else nbformat.read(executed, as_version=4))
    if executed.with_suffix(".glue.json").exists():
        glued.update(glued_from_build(executed.with_suffix(".glue.json")))
    return glued


def _parse_glued(found: dict[str, object], name: str, text: str | None) -> None:
    import ast

    if text is None:
        return
    try:
        found[name] = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        found[name] = text


def format_glued(value: object, spec: str) -> str:
    """Format as ``{glue:text}`` does: Python's format spec applied to the value."""
    if isinstance(value, str):
        return value.strip("'\"")
    return format(value, spec) if spec else str(value)


# ---------------------------------------------------------------- Markdown rewriting


class _Converter:
    def __init__(self, index: BookIndex, glued: dict[str, object], solutions: str):
        self.index, self.glued, self.solutions = index, glued, solutions

    def roles(self, text: str) -> str:
        return ROLE.sub(self._role, text)

    def _role(self, m: re.Match) -> str:
        role, text = m.group("role"), m.group("text")
        explicit = re.fullmatch(r"(?s)(?P<title>.*?)\s*<(?P<label>[^<>]+)>", text)
        title, label = (explicit["title"], explicit["label"]) if explicit else (None, text)
        if role.startswith("glue"):
            name, _, spec = text.partition(":")
            if name not in self.glued:
                raise ExportError(f"no glued value named {name!r} (was the notebook executed?)")
            return format_glued(self.glued[name], spec)
        if role in ("cite:p", "cite:t", "cite", "cite:ps", "cite:ts"):
            return self._cite(role, label)
        if role in ("ref", "numref", "prf:ref", "eq"):
            key = label.lstrip("#")
            target = self.index.labels.get(key) or self.index.labels.get(f"equation-{key}")
            if target is None:
                raise ExportError(f"{{{role}}}`{text}`: label not found in the built book")
            shown = title or target.text
            if role == "numref" and title and "%s" in title:
                shown = title.replace("%s", re.sub(r"^\D*", "", target.text))
            return self.index.link(shown, page=f"{target.page}#{target.anchor}")
        if role == "doc":
            key = label.removesuffix(".md")
            target = self.index.labels.get(key) or self.index.labels.get(f"book/{key}")
            shown = title or (target.text if target else key)
            return self.index.link(shown, page=target.page if target else None)
        if role in ("math",):
            return f"${text}$"
        raise ExportError(f"role {{{role}}} has no plain-Markdown translation")

    def _cite(self, role: str, keys: str) -> str:
        parts = []
        for key in (k.strip() for k in keys.split(",")):
            if key not in self.index.citations:
                raise ExportError(f"citation {key!r} is not in the bibliography")
            parts.append(self.index.citations[key])
        if role.startswith("cite:t"):
            return "; ".join(f"{a} ({y})" for a, y in parts)
        return "(" + "; ".join(f"{a}, {y}" for a, y in parts) + ")"

    def directives(self, text: str) -> str:
        return DIRECTIVE.sub(self._directive, text)

    def _directive(self, m: re.Match) -> str:
        name, arg = m.group("name"), m.group("arg").strip()
        options, body = _split_options(m.group("body"))
        label = options.get("label")
        body = self.directives(body).strip("\n")
        if name in BOX_KINDS:
            return self._box(name, arg, label, body)
        if name == "solution":
            return self._solution(arg, body) + "\n"
        if name in ("bibliography", "tableofcontents"):
            return ""
        if name in ("note", "tip", "warning", "important", "admonition", "hint", "attention", "caution"):
            head = arg if name == "admonition" else name.capitalize()
            return f"> **{head}.** " + "\n> ".join(body.splitlines()) + "\n"
        if name in ("math",):
            return f"$$\n{body}\n$$\n"
        raise ExportError(f"directive {{{name}}} has no plain-Markdown translation")

    def _box(self, name: str, arg: str, label: str | None, body: str) -> str:
        kind = BOX_KINDS[name]
        target = self.index.labels.get(label) if label else None
        head = target.text if target else (f"{kind} ({arg})" if arg and kind != "Proof" else kind)
        anchor = f'<a id="{label}"></a>' if label else ""
        if kind == "Proof":
            return f"*{head}.* {anchor}\n\n{body}\n\n$\\blacksquare$\n"
        return f"---\n\n**{head}.** {anchor}\n\n{body}\n\n---\n"

    def _solution(self, label: str, body: str) -> str:
        if self.solutions == "drop":
            return ""
        target = self.index.labels.get(label)
        summary = f"Solution to {target.text.split(' (')[0]}" if target else "Solution"
        return f"<details>\n<summary>{summary}</summary>\n\n{body}\n\n</details>\n"

    def markdown(self, text: str) -> str:
        text = COMMENT.sub("", text)
        text = TARGET.sub(lambda m: f'<a id="{m.group("label")}"></a>', text)
        return self.roles(self.directives(text)).strip("\n")


def _split_options(body: str) -> tuple[dict[str, str], str]:
    options, lines = {}, body.splitlines(keepends=True)
    while lines and (m := OPTION.match(lines[0].rstrip("\n"))):
        options[m.group("key")] = m.group("value").strip()
        lines.pop(0)
    return options, "".join(lines)


# ---------------------------------------------------------------- whole notebooks

GATE_START = re.compile(r"^`{3,}\{solution-start\}[ \t]*(?P<label>\S+)[^\n]*\n(?:^:[\w-]+:[^\n]*\n)*^`{3,}[ \t]*$\n?",
                        re.M)
GATE_END = re.compile(r"^`{3,}\{solution-end\}[^\n]*\n(?:^:[\w-]+:[^\n]*\n)*^`{3,}[ \t]*$\n?", re.M)


def convert(nb: nbformat.NotebookNode, index: BookIndex, *, glued: dict[str, object] | None = None,
            solutions: str = "keep", install: str | None = None,
            transform_code: Callable[[nbformat.NotebookNode], nbformat.NotebookNode | None] | None = None,
            stub: Callable[[nbformat.NotebookNode, str | None], nbformat.NotebookNode | None] | None = None,
            ) -> nbformat.NotebookNode:
    """A plain-Jupyter copy of chapter notebook ``nb`` (executed or not).

    ``glued`` defaults to the values glued in ``nb``'s own outputs. ``solutions`` is "keep"
    (collapsed ``<details>``) or "drop" (solution prose, gated solution sections and cells
    tagged ``solution`` removed). ``install``, when given, is a pip target for a first cell
    that installs the library where ``lib`` is missing ("" when no address is known: the
    first cell then says what to install). ``transform_code`` may rewrite or
    drop (return ``None``) each code cell. ``stub(cell, label)``, with ``solutions="drop"``, is
    offered each solution code cell (``label``: its gated solution, or ``None``) before it is
    dropped and may return a replacement (a student's stub), which ``transform_code`` then sees.
    """
    if solutions not in ("keep", "drop"):
        raise ValueError(f"solutions must be 'keep' or 'drop', got {solutions!r}")
    conv = _Converter(index, glued_values(nb) if glued is None else glued, solutions)
    out = copy.deepcopy(nb)
    cells, gated = [], None
    for cell in out.cells:
        if cell.cell_type == "markdown":
            new, gated = _markdown_cell(conv, cell, gated)
            cells.extend(new)
            continue
        if cell.cell_type == "code":
            tags = cell.metadata.get("tags", [])
            if solutions == "drop" and (gated or "solution" in tags):
                cell = stub(cell, gated) if stub is not None else None
                if cell is None:
                    continue
            elif gated or "solution" in tags:
                cell.metadata.setdefault("jupyter", {})["source_hidden"] = True
            if transform_code is not None:
                cell = transform_code(cell)
                if cell is None:
                    continue
        cells.append(cell)
    if gated:
        raise ExportError(f"solution-start {gated!r} has no solution-end")
    if install is not None:
        first = INSTALL_CELL.format(pip_target=install) if install else NO_INSTALL_CELL
        cells.insert(0, nbformat.v4.new_code_cell(first))
    out.cells = cells
    out.metadata.pop("jupytext", None)
    out.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return out


def _markdown_cell(conv: _Converter, cell, gated: str | None):
    """Convert one Markdown cell, tracking whether it lies inside a gated solution."""
    pieces, text, pos = [], cell.source, 0
    for m in sorted([*GATE_START.finditer(text), *GATE_END.finditer(text)], key=lambda m: m.start()):
        pieces.append((text[pos:m.start()], gated))
        if m.re is GATE_START:
            if gated:
                raise ExportError(f"solution-start {m['label']!r} inside solution {gated!r}")
            gated = m["label"]
        else:
            if not gated:
                raise ExportError("solution-end without solution-start")
            gated = None
        pos = m.end()
    pieces.append((text[pos:], gated))
    cells = []
    for chunk, inside in pieces:
        if not chunk.strip() or (inside and conv.solutions == "drop"):
            continue
        md = conv.markdown(chunk)
        if inside:
            target = conv.index.labels.get(inside)
            name = target.text.split(" (")[0] if target else inside
            md = f"<details>\n<summary>Solution to {name} (continued)</summary>\n\n{md}\n\n</details>"
        new = nbformat.v4.new_markdown_cell(md)
        new.metadata = copy.deepcopy(cell.metadata)
        new.pop("id", None)
        cells.append(new)
    return cells, gated


def reader_notebooks(build_dir: Path, index: BookIndex, chapters: Iterable[str], out_dir: Path,
                     install: str | None = None) -> list[Path]:
    """Write ``out_dir/<chapter>.ipynb``, the executed chapter in plain Jupyter Markdown."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for docname in chapters:
        executed = Path(build_dir) / "jupyter_execute" / f"{docname}.ipynb"
        if not executed.exists():
            continue
        nb = nbformat.read(executed, as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        if code and not any(c.get("outputs") for c in code):
            # myst-nb's cache mode writes the notebook without the cached outputs
            raise ExportError(f"{executed} has no outputs: myst-nb's cache mode writes notebooks without "
                              "them; build with execute_notebooks: force (as make book does)")
        reader = convert(nb, index, glued=executed_glued(executed, nb), solutions="keep", install=install)
        for i, cell in enumerate(reader.cells):  # stable ids: regenerating gives the same bytes
            cell["id"] = f"cell-{i}"
        path = out_dir / f"{Path(docname).name}.ipynb"
        nbformat.write(reader, path)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description="Write plain-Jupyter reader notebooks from a built book.")
    p.add_argument("--build", default=Path("_build"), type=Path, help="jupyter-book build folder")
    p.add_argument("--out", default=None, type=Path, help="default: <build>/html/notebooks")
    p.add_argument("--base-url", default=None, help="online address of the book, for links "
                   "(default: the GitHub Pages address of BOOK_REPO_URL, if set)")
    p.add_argument("--install", default=None, help="pip target installed by the first cell "
                   "(default: git+BOOK_REPO_URL, if set)")
    p.add_argument("--bib", default=[Path("references.bib")], type=Path, nargs="*")
    args = p.parse_args(argv)
    from .sphinx_ext import pages_url, repo_url

    repo = repo_url()
    base_url = args.base_url if args.base_url is not None else (pages_url(repo) if repo else "")
    install = args.install if args.install is not None else (f"git+{repo}" if repo else "")
    index = load_index(args.build / "html", args.bib, base_url)
    chapters = sorted(str(p.relative_to(args.build / "jupyter_execute").with_suffix(""))
                      for p in (args.build / "jupyter_execute").rglob("*.ipynb"))
    written = reader_notebooks(args.build, index, chapters, args.out or args.build / "html" / "notebooks",
                               install=install)
    print(json.dumps([str(p) for p in written], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
