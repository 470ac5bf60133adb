"""Wall time of every chapter, quick and full, against the book's budgets.

A chapter must run in at most 15 s in quick mode and 90 s at full settings on a 2-core
machine. Timing belongs here rather than in the tests, which may share the machine with
other work; run this on an otherwise idle machine:

    python benchmarks/chapter_times.py                 # every chapter in _toc.yml
    python benchmarks/chapter_times.py score_matching  # some chapters
    python benchmarks/chapter_times.py --quick         # quick mode only (make bench)
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from notebooks import run_chapter  # noqa: E402

BUDGET = {True: 15.0, False: 90.0}


def chapters() -> list[str]:
    """Executable chapters listed in _toc.yml, in order."""
    names = re.findall(r"file:\s*book/(\S+)", (ROOT / "_toc.yml").read_text())
    return [n for n in names if "```{code-cell}" in (ROOT / "book" / f"{n}.md").read_text()]


def main() -> None:
    args = sys.argv[1:]
    if "--quick" in args:
        quick_only([a for a in args if a != "--quick"] or chapters())
        return
    names = args or chapters()
    print(f"budgets: quick {BUDGET[True]:.0f} s, full {BUDGET[False]:.0f} s")
    print(f"{'chapter':<24} {'quick (s)':>10} {'full (s)':>10}")
    over = []
    for name in names:
        times = {quick: run_chapter(name, quick=quick).seconds for quick in (True, False)}
        flags = ["" if times[q] <= BUDGET[q] else " (over)" for q in (True, False)]
        over += [name for f in flags if f]
        print(f"{name:<24} {times[True]:>10.1f}{flags[0]} {times[False]:>10.1f}{flags[1]}")
    print("all within budget" if not over else f"over budget: {sorted(set(over))}")


def quick_only(names: list[str]) -> None:
    """Each chapter once in quick mode, as result lines against the quick budget."""
    for name in names:
        seconds = run_chapter(name, quick=True).seconds
        miss = "" if seconds <= BUDGET[True] else "  NOT MET"
        print(f"result: {name}, quick run = {seconds:.1f}s (target <= {BUDGET[True]:.0f} s){miss}", flush=True)


if __name__ == "__main__":
    main()
