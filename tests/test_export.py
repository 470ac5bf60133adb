"""The MyST -> plain Jupyter converter (tools/export.py), on a small chapter written here."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from tools import export
from tools.export import BookIndex, ExportError, Target

ROOT = Path(__file__).resolve().parents[1]

CHAPTER_MD = """\
(chap-demo)=
# Demo

% a comment the reader must not see
The error is {glue:text}`err:.3f` after {glue:text}`steps:d` steps; see {cite:t}`ho2020denoising`
and {cite:p}`vincent2011connection,ho2020denoising`. By {prf:ref}`thm-demo` and {ref}`the exercise <ex-demo>`
(also {ref}`ex-demo`, equation {eq}`eq-demo`, the {doc}`notation`).

```{prf:theorem} Demo bound
:label: thm-demo

For all $t > 0$,

$$
a_t \\le 1.
$$
```

```{prf:proof}
Obvious.
```

```{exercise} Compute it
:label: ex-demo

Compute $a_t$.
```

```{solution} ex-demo
:class: dropdown

The answer is $e^{-t}$.
```

```{solution-start} ex-demo
:class: dropdown
```

Gated prose.
"""


def make_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    glue = nbformat.v4.new_code_cell("record('err', 0.12345)")
    glue.outputs = [nbformat.v4.new_output(
        "display_data", data={"text/plain": "0.12345"},
        metadata={"scrapbook": {"name": "err", "mime_prefix": ""}}),
        nbformat.v4.new_output("display_data", data={"text/plain": "40"},
                               metadata={"scrapbook": {"name": "steps", "mime_prefix": ""}})]
    sol_code = nbformat.v4.new_code_cell("answer = 1", metadata={"tags": ["solution"]})
    after = nbformat.v4.new_markdown_cell("More gated prose.\n\n```{solution-end}\n```\n\nAfter the solution.")
    nb.cells = [glue, nbformat.v4.new_markdown_cell(CHAPTER_MD), sol_code, after]
    return nb


def make_index(base_url: str = "https://example.org/book/") -> BookIndex:
    page = "book/demo.html"
    labels = {"thm-demo": Target(page, "thm-demo", "Theorem 2.1 (Demo bound)"),
              "ex-demo": Target(page, "ex-demo", "Exercise 2.3 (Compute it)"),
              "equation-eq-demo": Target(page, "equation-eq-demo", "(2.4)"),
              "chap-demo": Target(page, "chap-demo", "Demo"),
              "notation": Target("book/notation.html", "notation", "Notation")}
    citations = export.read_citations(ROOT / "references.bib")
    return BookIndex(labels=labels, citations=citations, base_url=base_url)


def all_markdown(nb: nbformat.NotebookNode) -> str:
    return "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")


def test_reader_notebook_has_no_myst_left_and_keeps_solutions_collapsed():
    out = export.convert(make_notebook(), make_index())
    md = all_markdown(out)
    assert not re.search(r"\{[\w:-]+\}`", md), "a MyST role survived"
    assert "```{" not in md and "a comment" not in md
    assert "The error is 0.123 after 40 steps" in md
    assert "Ho et al. (2020)" in md and "(Vincent, 2011; Ho et al., 2020)" in md
    assert "[Theorem 2.1 (Demo bound)](https://example.org/book/book/demo.html#thm-demo)" in md
    assert "[the exercise](https://example.org/book/book/demo.html#ex-demo)" in md
    assert "[(2.4)](https://example.org/book/book/demo.html#equation-eq-demo)" in md
    assert "[Notation](https://example.org/book/book/notation.html)" in md
    assert "**Theorem 2.1 (Demo bound).**" in md and "**Exercise 2.3 (Compute it).**" in md
    assert "$$\na_t \\le 1.\n$$" in md  # display math kept for Jupyter's MathJax
    assert md.count("<details>") == 3 and md.count("</details>") == 3
    assert "<summary>Solution to Exercise 2.3</summary>" in md and "The answer is $e^{-t}$." in md
    code = [c for c in out.cells if c.cell_type == "code"]
    assert code[1].metadata["jupyter"]["source_hidden"] is True  # gated solution code, collapsed
    assert "After the solution." in md


def test_student_version_drops_every_solution():
    out = export.convert(make_notebook(), make_index(), solutions="drop")
    md = all_markdown(out)
    assert "<details>" not in md and "The answer is" not in md and "Gated prose" not in md
    assert "More gated prose" not in md and "After the solution." in md
    assert [c.source for c in out.cells if c.cell_type == "code"] == ["record('err', 0.12345)"]


def test_without_an_online_address_references_are_plain_text():
    md = all_markdown(export.convert(make_notebook(), make_index(base_url="")))
    assert "Theorem 2.1 (Demo bound)" in md and "](" not in md


def test_install_cell_and_code_hook():
    nb = export.convert(make_notebook(), make_index(), install="git+https://github.com/o/n",
                        transform_code=lambda c: None if "solution" in c.metadata.get("tags", []) else c)
    assert nb.cells[0].cell_type == "code" and 'pip install -q "git+https://github.com/o/n"' in nb.cells[0].source
    assert all("answer = 1" not in c.source for c in nb.cells)
    unknown = export.convert(make_notebook(), make_index(), install="")
    assert "pip install" in unknown.cells[0].source and "%pip" not in unknown.cells[0].source
    assert export.convert(make_notebook(), make_index()).cells[0].source.startswith("record(")  # no extra cell


def test_untranslatable_syntax_fails_loudly():
    nb = make_notebook()
    nb.cells[1].source += "\n{unknownrole}`x`\n"
    with pytest.raises(ExportError, match="unknownrole"):
        export.convert(nb, make_index())
    nb = make_notebook()
    nb.cells[1].source = nb.cells[1].source.replace("{glue:text}`err:.3f`", "{glue:text}`missing:.3f`")
    with pytest.raises(ExportError, match="missing"):
        export.convert(nb, make_index())
    nb = make_notebook()
    nb.cells[1].source += "\n{prf:ref}`thm-nowhere`\n"
    with pytest.raises(ExportError, match="thm-nowhere"):
        export.convert(nb, make_index())
    with pytest.raises(ValueError, match="solutions"):
        export.convert(make_notebook(), make_index(), solutions="hide")


def test_unclosed_gated_solution_is_an_error():
    nb = make_notebook()
    nb.cells = nb.cells[:3]  # no closing solution-end
    with pytest.raises(ExportError, match="no solution-end"):
        export.convert(nb, make_index())


def test_citations_read_from_the_bibliography():
    cites = export.read_citations(ROOT / "references.bib")
    assert cites["hyvarinen2005estimation"] == ("Hyvärinen", "2005")
    assert cites["vincent2011connection"] == ("Vincent", "2011")
    assert cites["ho2020denoising"] == ("Ho et al.", "2020")


def test_glued_strings_and_formats():
    assert export.format_glued(0.5, ".1%") == "50.0%"
    assert export.format_glued("'text'", "") == "text"
    assert export.format_glued(3, "") == "3"


def test_reader_notebooks_need_an_executed_build(tmp_path):
    folder = tmp_path / "jupyter_execute" / "book"
    folder.mkdir(parents=True)
    executed = make_notebook()
    glue_json = {"err": {"data": {"text/plain": "0.5"}}, "steps": {"data": {"text/plain": "7"}}}
    executed.cells[0].outputs = []  # myst-nb moves glued outputs to <chapter>.glue.json
    executed.cells[2].outputs = [nbformat.v4.new_output("stream", text="ran")]
    nbformat.write(executed, folder / "demo.ipynb")
    (folder / "demo.glue.json").write_text(json.dumps(glue_json))
    [path] = export.reader_notebooks(tmp_path, make_index(), ["book/demo"], tmp_path / "out")
    first = nbformat.read(path, as_version=4)
    assert "The error is 0.500 after 7 steps" in all_markdown(first)
    again = export.reader_notebooks(tmp_path, make_index(), ["book/demo"], tmp_path / "out2")[0]
    assert again.read_bytes() == path.read_bytes(), "regenerating gives the same bytes"
    for cell in executed.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    nbformat.write(executed, folder / "demo.ipynb")
    with pytest.raises(ExportError, match="no outputs"):
        export.reader_notebooks(tmp_path, make_index(), ["book/demo"], tmp_path / "out3")
