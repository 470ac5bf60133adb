"""Course assignments (tools/assign.py, tools/grade.py): student and instructor notebooks and grading.

Two sources: the book's real chapters (generated once per session with a stand-in for the
built book's index and glued values, so no chapter is executed), and the synthetic chapter
``tests/fixtures/assign/demo.md`` with two gradable exercises, generated for real (one quick
run) and graded.
"""

from __future__ import annotations

import csv
import json
import math
import re
import sys
from pathlib import Path

import nbformat
import pytest

import lib
from tools import assign, export, grade
from tools.assign import AssignError

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures" / "assign"
DEMO = FIXTURES / "demo.md"
NOT_ATTEMPTED = "NOT ATTEMPTED — the function still raises NotImplementedError"


class _AnyLabels(dict):
    """Every label resolves (to a link named by the label): no built book is needed."""

    def get(self, key, default=None):
        return export.Target("book/page.html", key, key)


class _AnyGlued(dict):
    """Every glued name has the value 1 (formats with any numeric spec)."""

    def __contains__(self, key):
        return True

    def __getitem__(self, key):
        return 1


def offline_index() -> export.BookIndex:
    return export.BookIndex(labels=_AnyLabels(), citations=export.read_citations(ROOT / "references.bib"),
                            base_url="https://example.org/book/")


def demo_checks() -> dict:
    sys.path.insert(0, str(FIXTURES))
    try:
        import demo_checks  # noqa: F401  (registers ex-demo-1 and ex-demo-2)
    finally:
        sys.path.remove(str(FIXTURES))
    from lib.assignments import registered_checks

    return registered_checks()


def _generate(paths, out, glued_for=lambda ch: _AnyGlued(), checks=None):
    return assign.generate(paths, out, offline_index(), glued_for=glued_for, checks=checks,
                           install="git+https://github.com/o/n", repo="https://github.com/o/n")


@pytest.fixture(scope="session")
def real(tmp_path_factory):
    out = tmp_path_factory.mktemp("assignments")
    return _generate(assign.toc_chapters(), out), out


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    demo_checks()
    out = tmp_path_factory.mktemp("demo")
    chapters = _generate([DEMO], out, glued_for=lambda ch: assign.quick_run(ch, out / ".quick-runs"))
    return chapters[0], out


def notebooks(out: Path, name: str) -> tuple[nbformat.NotebookNode, nbformat.NotebookNode]:
    return tuple(nbformat.read(out / kind / f"{name}.ipynb", as_version=4) for kind in assign.KINDS)


def text(nb: nbformat.NotebookNode) -> str:
    return "\n".join(c.source for c in nb.cells)


# ---------------------------------------------------------------- what the notebooks hold


def test_every_executable_chapter_gets_both_notebooks_and_the_index(real):
    chapters, out = real
    names = [ch.name for ch in chapters]
    assert "score_matching" in names and len(names) == len(set(names)) >= 7
    page = (out / "index.html").read_text()
    for name in names:
        for kind in assign.KINDS:
            assert (out / kind / f"{name}.ipynb").exists()
            assert f'href="{kind}/{name}.ipynb"' in page


@pytest.mark.parametrize("which", ["real", "demo"])
def test_notebooks_are_quick_clean_and_stamped(which, request):
    chapters, out = request.getfixturevalue(which)
    chapters = chapters if isinstance(chapters, list) else [chapters]
    for ch in chapters:
        for kind, nb in zip(assign.KINDS, notebooks(out, ch.name)):
            meta = nb.metadata[assign.META_KEY]
            assert meta == {"chapter": ch.name, "kind": kind, "version": lib.__version__,
                            "labels": sorted(ch.gradable)}
            assert f"version {lib.__version__}" in nb.cells[0].source
            install = nb.cells[1]
            assert install.cell_type == "code" and "%pip install" in install.source
            assert f'!= "{lib.__version__}"' in install.source
            params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
            assert len(params) == 1 and re.search(r"^QUICK = True", params[0].source, re.M), ch.name
            code = [c for c in nb.cells if c.cell_type == "code"]
            assert all(not c.outputs and c.execution_count is None for c in code)
            assert not re.search(r"\{[\w:-]+\}`|```\{", text(nb)), f"MyST left in {ch.name} ({kind})"
            assert [c.id for c in nb.cells] == [f"cell-{i}" for i in range(len(nb.cells))]


def _solution_lines(instructor: nbformat.NotebookNode) -> set[str]:
    """Lines of the instructor's solutions (collapsed prose and code) found nowhere else in it."""
    inside, outside = set(), set()
    for cell in instructor.cells:
        hidden = cell.metadata.get("jupyter", {}).get("source_hidden", False)
        if cell.cell_type == "code":
            (inside if hidden else outside).update(cell.source.splitlines())
            continue
        depth = 0
        for line in cell.source.splitlines():
            depth += line.count("<details>")
            (inside if depth else outside).add(line)
            depth -= line.count("</details>")
    return {ln.strip() for ln in inside - outside if len(ln.strip()) >= 12}


@pytest.mark.parametrize("which", ["real", "demo"])
def test_no_solution_text_tag_or_output_leaks_into_the_student_notebook(which, request):
    chapters, out = request.getfixturevalue(which)
    chapters = chapters if isinstance(chapters, list) else [chapters]
    for ch in chapters:
        student, instructor = notebooks(out, ch.name)
        stubs = "\n".join(g.stub for g in ch.gradable.values())
        student_lines = {ln.strip() for ln in text(student).splitlines()}
        leaked = sorted((_solution_lines(instructor) & student_lines) - {ln.strip() for ln in stubs.splitlines()})
        assert not leaked, f"{ch.name}: solution lines in the student notebook: {leaked[:5]}"
        assert "<details>" not in text(student)
        assert not any("solution" in c.metadata.get("tags", []) for c in student.cells)
        assert not any(c.metadata.get("jupyter", {}).get("source_hidden") for c in student.cells)


def test_solution_markers_are_in_the_instructor_version_only(demo):
    chapter, out = demo
    student, instructor = notebooks(out, chapter.name)
    for marker in ("SOLUTION-PROSE-ONE", "SOLUTION-PROSE-TWO", "SOLUTION-CODE-ONE", "SOLUTION-CODE-TWO", "expm1"):
        assert marker in text(instructor) and marker not in text(student), marker
    assert len(_solution_lines(instructor)) >= 4  # the leak test above compares something


def test_stub_is_decorator_signature_and_docstring_of_the_solution(demo):
    chapter, out = demo
    student, _ = notebooks(out, chapter.name)
    stubs = [c for c in student.cells if "answer" in c.metadata.get("tags", [])]
    assert [c.source for c in stubs] == [chapter.gradable[k].stub for k in ("ex-demo-1", "ex-demo-2")]
    assert stubs[0].source == (
        '@lib.answer("ex-demo-1")\n'
        "def point_mass_score(x: torch.Tensor, t: float) -> torch.Tensor:\n"
        '    """The score of N(0, s_t^2) at x (float64 tensor of any shape), with s_t^2 = 1 - exp(-2t)."""\n'
        "    raise NotImplementedError('ex-demo-1: write this function, then run the check cell below')")
    checks = [c for c in student.cells if "check" in c.metadata.get("tags", [])]
    assert [c.source for c in checks] == ['lib.check("ex-demo-1")', 'lib.check("ex-demo-2")']
    assert all("remove-cell" not in c.metadata["tags"] for c in checks)  # visible in Jupyter
    order = [i for i, c in enumerate(student.cells) if c in stubs or c in checks]
    assert [student.cells[i].source.startswith("@lib") for i in order] == [True, False, True, False]


def test_glued_numbers_are_those_of_a_quick_run(demo):
    chapter, out = demo
    for nb in notebooks(out, chapter.name):
        assert "We use 10 points." in text(nb)  # 1000 in the full run
        assert "(Ho et al., 2020)" in text(nb)


def test_regenerating_is_byte_identical(real, demo, tmp_path):
    chapters, out = real
    _generate([ch.path for ch in chapters], tmp_path / "real")
    chapter, demo_out = demo
    _generate([DEMO], tmp_path / "demo", glued_for=lambda ch: assign.quick_run(ch, demo_out / ".quick-runs"))
    for first, again in ((out, tmp_path / "real"), (demo_out, tmp_path / "demo")):
        files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file() and ".quick-runs" not in p.parts)
        assert files and files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file()
                                         and ".quick-runs" not in p.parts)
        for rel in files:
            assert (first / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_every_chapter_has_at_least_two_gradable_exercises(real):
    chapters, _ = real
    few = {ch.name: sorted(ch.gradable) for ch in chapters if len(ch.gradable) < 2}
    assert not few, f"chapters with fewer than two gradable exercises: {few}"


# ---------------------------------------------------------------- loud failures


SOLUTION_CELL = '\n```{code-cell} ipython3\n:tags: [solution]\n\nx = 1\n```\n'
LOOSE_ANSWER = ('\n```{code-cell} ipython3\n\n@lib.answer("ex-demo-1")\ndef f(x, t):\n'
                '    """Doc."""\n    return x\n```\n')
UNKNOWN_CHECK = '\n```{code-cell} ipython3\n:tags: [remove-cell, check]\n\nlib.check("ex-demo-9")\n```\n'
SHOWN_CHECK = '\n```{code-cell} ipython3\n:tags: [check]\n\nlib.check("ex-demo-1")\n```\n'


@pytest.mark.parametrize("extra, drop, message", [
    (SOLUTION_CELL, None, r"demo: cell 'x = 1' is tagged solution but lies outside a solution block"),
    (LOOSE_ANSWER, None, r"demo: @answer\('ex-demo-1'\) lies outside a solution block"),
    (UNKNOWN_CHECK, None, r"demo: a check cell calls check\('ex-demo-9'\), but no check is registered"),
    (SHOWN_CHECK, None, r"demo: the check cell of 'ex-demo-1' is not tagged remove-cell"),
    (UNKNOWN_CHECK.replace("ex-demo-9", "ex-other-1"), "other",
     r"demo: a check cell calls check\('ex-other-1'\), but this chapter has no @answer"),
    ("", "ex-demo-2", r"demo: @answer\('ex-demo-2'\) has no registered check"),
    ("", "extra", r"demo: the registered check 'ex-demo-3' has no @answer solution"),
])
def test_generation_fails_loudly_naming_chapter_and_label(extra, drop, message, tmp_path):
    checks = dict(demo_checks())
    if drop == "ex-demo-2":
        checks.pop("ex-demo-2")
    if drop in ("extra", "other"):
        from lib.assignments import Check
        label, chapter = ("ex-demo-3", "demo") if drop == "extra" else ("ex-other-1", "other")
        checks[label] = Check(label, lambda: 0, lambda g: {}, lambda *a: True, chapter=chapter)
    bad = tmp_path / "demo.md"
    bad.write_text(DEMO.read_text() + extra)
    with pytest.raises(AssignError, match=message):
        _generate([bad], tmp_path / "out", checks=checks)
    assert not (tmp_path / "out").exists(), "nothing is written when a chapter is broken"


def test_the_command_exits_non_zero_with_the_message(tmp_path, monkeypatch, capsys):
    demo_checks()
    (tmp_path / "html").mkdir()
    (tmp_path / "html" / "objects.inv").write_bytes(b"")
    monkeypatch.setattr(assign.export, "load_index", lambda *a, **k: offline_index())
    bad = tmp_path / "demo.md"
    bad.write_text(DEMO.read_text() + LOOSE_ANSWER)
    assert assign.main(["--build", str(tmp_path), "--chapters", str(bad)]) == 1
    assert "demo: @answer('ex-demo-1') lies outside a solution block" in capsys.readouterr().out


# ---------------------------------------------------------------- running the student notebooks


def _setup_cells(nb: nbformat.NotebookNode) -> list:
    """The install, parameters and first (imports) cells: what a stub and a check need."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    params = next(i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", []))
    return code[:params + 2]


def _run_stubs_and_checks(chapters, out: Path, cwd: Path) -> dict[str, str]:
    """Set-up, stub and check cells of the student notebooks, run in one kernel; check label -> output."""
    from nbclient import NotebookClient

    run = nbformat.v4.new_notebook()
    for ch in chapters:
        student, _ = notebooks(out, ch.name)
        run.cells += [nbformat.from_dict(dict(c)) for c in _setup_cells(student)]
        run.cells += [c for c in student.cells if {"answer", "check"} & set(c.metadata.get("tags", []))]
    NotebookClient(run, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    found = {}
    for cell in run.cells:
        if "check" in cell.metadata.get("tags", []):
            [label] = assign.checked_labels(cell.source)
            found[label] = "".join(o.get("data", {}).get("text/plain", "") for o in cell.outputs)
    return found


def test_unmodified_student_demo_gets_not_attempted_from_its_own_stub(demo):
    chapter, out = demo
    outputs = _run_stubs_and_checks([chapter], out, FIXTURES)
    assert set(outputs) == {"ex-demo-1", "ex-demo-2"}
    for label, shown in outputs.items():
        assert shown == f"{label}: {NOT_ATTEMPTED}", shown


def test_whole_student_notebook_runs_without_myst_nb_as_in_colab(demo):
    from nbclient import NotebookClient

    chapter, out = demo
    student, _ = notebooks(out, chapter.name)
    block = nbformat.v4.new_code_cell("import sys\nsys.modules['myst_nb'] = None  # import myst_nb now fails")
    student.cells.insert(0, block)
    NotebookClient(student, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(FIXTURES)}}).execute()
    shown = "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "")
                    for c in student.cells if c.cell_type == "code" for o in c.outputs)
    assert "demo_points = 10" in shown  # lib.record prints where it cannot glue
    for label in ("ex-demo-1", "ex-demo-2"):
        assert f"{label}: {NOT_ATTEMPTED}" in shown


def test_unmodified_student_chapters_get_not_attempted_from_their_own_stubs(real):
    chapters, out = real
    gradable = [ch for ch in chapters if ch.gradable]
    if not gradable:
        pytest.skip("no chapter has a gradable exercise yet")
    outputs = _run_stubs_and_checks(gradable, out, ROOT / "book")
    assert set(outputs) == {label for ch in gradable for label in ch.checked}
    bad = {label: shown for label, shown in outputs.items() if shown != f"{label}: {NOT_ATTEMPTED}"}
    assert not bad, bad


# ---------------------------------------------------------------- grading


def _submission(student: nbformat.NotebookNode, bodies: dict[str, str], extra: str | None = None):
    nb = nbformat.from_dict(dict(student))
    nb.cells = [nbformat.from_dict(dict(c)) for c in student.cells]
    for cell in nb.cells:
        for label, body in bodies.items():
            if f'answer("{label}")' in cell.source:
                cell.source = re.sub(r"    raise NotImplementedError\(.*\)$", body, cell.source)
    if extra:
        nb.cells.append(nbformat.v4.new_code_cell(extra))
    return nb


RIGHT = {"ex-demo-1": "    return -x / (1 - math.exp(-2 * t))",
         "ex-demo-2": "    a = math.exp(-t)\n    return a * v * x / (a * a * v + 1 - a * a)"}


def test_grading_scores_right_wrong_unattempted_hung_and_broken_submissions(demo, tmp_path):
    chapter, out = demo
    student, _ = notebooks(out, chapter.name)
    folder = tmp_path / "submissions"
    folder.mkdir()
    nbformat.write(_submission(student, RIGHT), folder / "alice.ipynb")
    wrong = {**RIGHT, "ex-demo-1": "    return -x / (2 * t)"}  # the small-t approximation of s_t^2
    nbformat.write(_submission(student, wrong, extra="raise RuntimeError('a broken cell')"),
                   folder / "bob.ipynb")
    nbformat.write(student, folder / "carol.ipynb")
    hung = _submission(student, {"ex-demo-1": RIGHT["ex-demo-1"]}, extra="import time\ntime.sleep(10_000)")
    nbformat.write(hung, folder / "dave.ipynb")
    (folder / "eve").mkdir()
    (folder / "eve" / "demo.ipynb").write_text("{ not a notebook")
    csv_path = tmp_path / "grades.csv"
    assert grade.main([str(folder), "--seed", "2718", "--inputs", "200", "--timeout", "30", "--jobs", "2",
                       "--cwd", str(FIXTURES), "--out", str(csv_path)]) == 0
    rows = list(csv.DictReader(csv_path.open()))
    assert list(rows[0]) == list(grade.FIELDS)
    got = {(r["student"], r["label"]): (r["status"], r["n_inputs"], r["points"]) for r in rows}
    assert got == {
        ("alice", "ex-demo-1"): ("PASS", "200", "1"), ("alice", "ex-demo-2"): ("PASS", "200", "1"),
        ("bob", "ex-demo-1"): ("WRONG", "0", "0"), ("bob", "ex-demo-2"): ("PASS", "200", "1"),
        ("carol", "ex-demo-1"): ("NOT ATTEMPTED", "0", "0"), ("carol", "ex-demo-2"): ("NOT ATTEMPTED", "0", "0"),
        ("dave", "ex-demo-1"): ("PASS", "200", "1"), ("dave", "ex-demo-2"): ("NOT ATTEMPTED", "0", "0"),
        ("eve", "ex-demo-1"): ("ERROR", "0", "0"), ("eve", "ex-demo-2"): ("ERROR", "0", "0"),
    }
    assert all(r["chapter"] == "demo" for r in rows)
    assert "checks passed on 200 inputs" in next(r["message"] for r in rows if r["student"] == "alice")


def test_grade_uses_the_graders_seed_and_count():
    from lib.assignments import check
    from lib.assignments import grade as grade_labels

    checks = demo_checks()
    right = {"ex-demo-1": lambda x, t: -x / (1 - math.exp(-2 * t))}
    [result] = grade_labels(["ex-demo-1"], seed=5, answers=right)
    assert result.status == "PASS" and result.n_inputs == checks["ex-demo-1"].n_hidden
    assert "public" not in result.message
    assert check("ex-demo-1", answers=right).n_inputs == checks["ex-demo-1"].n_public
    [unknown] = grade_labels(["ex-nowhere"], seed=5)
    assert unknown.status == "ERROR"


# ---------------------------------------------------------------- the site


def test_chapter_pages_link_their_student_notebook(monkeypatch):
    from types import SimpleNamespace

    from tools import sphinx_ext

    metadata = {"book/demo": {"kernelspec": {"name": "python3"}}}
    app = SimpleNamespace(srcdir=str(ROOT), env=SimpleNamespace(metadata=metadata))
    for repo in ("", "https://github.com/o/n"):
        monkeypatch.setenv("BOOK_REPO_URL", repo)
        context = {"pathto": lambda name, kind: f"../{name}", "page_source_suffix": None,
                   "header_buttons": [{"label": "download-buttons", "buttons": []}]}
        sphinx_ext.page_context(app, "book/demo", "page.html", context, None)
        buttons = {b["label"]: b["url"] for b in context["header_buttons"][-1]["buttons"]}
        assert buttons["download-assignment-button"] == "../assignments/demo.ipynb"
        colab = buttons.get("assignment-colab-button")
        assert (colab == "https://colab.research.google.com/github/o/n/blob/gh-pages/assignments/demo.ipynb"
                if repo else colab is None)


def test_publish_copies_only_student_notebooks(real, tmp_path):
    chapters, out = real
    site = assign.publish(chapters, out, tmp_path / "site" / "assignments")
    assert sorted(p.name for p in site.iterdir()) == sorted([f"{ch.name}.ipynb" for ch in chapters] + ["index.html"])
    for ch in chapters:
        assert (site / f"{ch.name}.ipynb").read_bytes() == (out / "student" / f"{ch.name}.ipynb").read_bytes()
    assert "instructor" not in (site / "index.html").read_text()


def test_numbers_only_a_full_run_computes_come_from_the_built_book(demo, tmp_path):
    """A full-settings-only experiment glues nothing in a quick run: its numbers are the book's."""
    chapter, _ = demo
    executed = tmp_path / "jupyter_execute" / "book" / f"{chapter.name}.ipynb"
    executed.parent.mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(), executed)
    shown = {"output_type": "display_data", "data": {"text/plain": "{}"}, "metadata": {}}
    executed.with_suffix(".glue.json").write_text(json.dumps(
        {"full_only": {**shown, "data": {"text/plain": "0.125"}},
         "n_points": {**shown, "data": {"text/plain": "1000"}}}))
    built = assign.built_values(tmp_path, chapter)
    assert built == {"full_only": 0.125, "n_points": 1000}
    assert assign.built_values(tmp_path / "nowhere", chapter) == {}
