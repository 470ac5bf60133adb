"""Grade submitted student notebooks: ``python -m tools.grade SUBMISSIONS --seed SECRET --out grades.csv``.

Each ``*.ipynb`` under ``SUBMISSIONS`` (``<student>.ipynb``, or ``<student>/<chapter>.ipynb``) is
run in a fresh kernel, every cell with a timeout; an error in a student's cell does not stop
the run, and a cell that runs too long is interrupted. A last cell added by the grader then
checks every gradable exercise of the notebook's chapter (the checks registered for it in
``lib.assignments``, not the list the notebook carries) with the grader's secret seed and
``--inputs`` inputs (default: each check's own larger count). A notebook that cannot be read,
whose kernel dies, or whose grading cell gives no result gets ERROR for each exercise; the
grader itself never stops on a bad submission. The CSV has one row per notebook and exercise:
student, file, chapter, label, status, n_inputs, points (1 for PASS), message.

"Hidden" means only unseen inputs: the library and its references are public, and the
student's code runs in the same kernel as the checks (this is no sandbox).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import nbformat

from lib.assignments.core import GRADE_MARKER

from .assign import META_KEY

ROOT = Path(__file__).resolve().parents[1]
FIELDS = ("student", "file", "chapter", "label", "status", "n_inputs", "points", "message")


@dataclass
class Grade:
    student: str
    file: str
    chapter: str
    label: str
    status: str
    n_inputs: int
    message: str

    @property
    def points(self) -> int:
        return int(self.status == "PASS")

    def row(self) -> dict[str, object]:
        return {"student": self.student, "file": self.file, "chapter": self.chapter, "label": self.label,
                "status": self.status, "n_inputs": self.n_inputs, "points": self.points, "message": self.message}


def chapter_labels() -> dict[str, list[str]]:
    """The registered checks' labels by chapter."""
    from lib.assignments import registered_checks

    found: dict[str, list[str]] = {}
    for label, spec in registered_checks().items():
        found.setdefault(spec.chapter, []).append(label)
    return {chapter: sorted(labels) for chapter, labels in found.items()}


def _chapter_of(path: Path, nb: nbformat.NotebookNode | None, known: dict[str, list[str]]) -> str | None:
    stamped = (nb.metadata.get(META_KEY, {}) if nb is not None else {}).get("chapter")
    if stamped in known:
        return stamped
    # metadata lost (e.g. re-saved by another tool): the chapter's name in the file name
    matches = [c for c in known if c and c in path.stem]
    return max(matches, key=len) if matches else None


def grade_notebook(path: Path, student: str, *, seed: int, n_inputs: int | None, timeout: int,
                   cwd: Path, known: dict[str, list[str]]) -> list[Grade]:
    """Run one submission and grade every exercise of its chapter (never raises)."""
    path = Path(path)
    try:
        nb = nbformat.read(path, as_version=4)
    except Exception as exc:  # not a notebook at all
        nb, unreadable = None, f"the notebook could not be read: {type(exc).__name__}"
    else:
        unreadable = None
    chapter = _chapter_of(path, nb, known)
    if chapter is None:
        return [Grade(student, path.name, "?", "?", "ERROR", 0,
                      unreadable or "the chapter of this notebook is unknown")]
    labels = known[chapter]
    if nb is None:
        return [Grade(student, path.name, chapter, label, "ERROR", 0, unreadable) for label in labels]
    results, problem = _execute(nb, labels, seed=seed, n_inputs=n_inputs, timeout=timeout, cwd=cwd)
    grades = []
    for label in labels:
        found = results.get(label)
        if found is None:
            grades.append(Grade(student, path.name, chapter, label, "ERROR", 0, problem or "no result"))
        else:
            grades.append(Grade(student, path.name, chapter, label, found["status"], found["n_inputs"],
                                found["message"]))
    return grades


def _execute(nb: nbformat.NotebookNode, labels: list[str], *, seed: int, n_inputs: int | None, timeout: int,
             cwd: Path) -> tuple[dict[str, dict], str | None]:
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    nb = nbformat.from_dict(json.loads(json.dumps(nb)))
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = []
    grader = (f"from lib.assignments.core import grade_report as _grade_report\n"
              f"print(_grade_report({labels!r}, seed={int(seed)}, n_inputs={n_inputs!r}))")
    nb.cells.append(nbformat.v4.new_code_cell(grader))
    client = NotebookClient(nb, timeout=timeout, allow_errors=True, interrupt_on_timeout=True,
                            kernel_name="python3", resources={"metadata": {"path": str(cwd)}})
    try:
        client.execute()
    except DeadKernelError:
        return {}, "the kernel died while running the notebook"
    except Exception as exc:  # e.g. a timeout that interrupting could not end
        return {}, f"the notebook could not be run: {type(exc).__name__}: {exc}"
    text = "".join(out.get("text", "") for out in nb.cells[-1].get("outputs", []) if out.get("name") == "stdout")
    line = next((ln for ln in text.splitlines() if ln.startswith(GRADE_MARKER)), None)
    if line is None:
        return {}, "the grading cell gave no result (was lib or the checks changed by the notebook?)"
    return {row["label"]: row for row in json.loads(line[len(GRADE_MARKER):])}, None


def submissions(folder: Path) -> list[tuple[str, Path]]:
    """``(student, notebook)`` pairs: ``<student>.ipynb`` or ``<student>/<anything>.ipynb``."""
    found = []
    for path in sorted(Path(folder).rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts:
            continue
        rel = path.relative_to(folder)
        found.append((rel.parts[0] if len(rel.parts) > 1 else path.stem, path))
    return found


def grade_folder(folder: Path, *, seed: int, n_inputs: int | None = None, timeout: int = 300,
                 cwd: Path = ROOT / "book", jobs: int = 1) -> list[Grade]:
    """Grade every submission under ``folder``, ``jobs`` kernels at a time (rows in file order)."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from functools import partial

    known = chapter_labels()
    found = submissions(folder)
    run = partial(_grade_one, seed=seed, n_inputs=n_inputs, timeout=timeout, cwd=cwd, known=known)
    if jobs <= 1:
        per_file = [run(item) for item in found]
    else:  # separate processes: each drives its own kernel
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            per_file = list(pool.map(run, found))
    return [g for grades in per_file for g in grades]


def _grade_one(item: tuple[str, Path], **kw) -> list[Grade]:
    student, path = item
    return grade_notebook(path, student, **kw)


def write_csv(grades: list[Grade], out: Path) -> None:
    with open(out, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=FIELDS)
        writer.writeheader()
        for g in grades:
            writer.writerow(g.row())


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description="Grade student notebooks with a secret seed; write a CSV.")
    p.add_argument("submissions", type=Path, help="folder of submitted notebooks")
    p.add_argument("--seed", required=True, type=int, help="the instructor's secret seed")
    p.add_argument("--inputs", default=None, type=int, help="inputs per check (default: each check's own)")
    p.add_argument("--timeout", default=300, type=int, help="seconds each cell may run")
    p.add_argument("--cwd", default=ROOT / "book", type=Path, help="working directory of the kernels")
    p.add_argument("--jobs", default=1, type=int, help="notebooks graded at the same time")
    p.add_argument("--out", default=Path("grades.csv"), type=Path)
    args = p.parse_args(argv)
    if not args.submissions.is_dir():
        p.error(f"{args.submissions} is not a folder")
    grades = grade_folder(args.submissions, seed=args.seed, n_inputs=args.inputs, timeout=args.timeout,
                          cwd=args.cwd, jobs=args.jobs)
    write_csv(grades, args.out)
    totals: dict[str, list[int]] = {}
    for g in grades:
        totals.setdefault(g.student, []).append(g.points)
    for student, points in sorted(totals.items()):
        print(f"{student}: {sum(points)}/{len(points)}")
    print(f"wrote {args.out} ({len(grades)} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
