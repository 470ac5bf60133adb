"""Every benchmark in its quick form, then one table of the measured ratios and their targets.

Each ``benchmarks/*.py`` runs in its own process with ``--quick`` (its full output is shown as
it goes). Benchmarks print their results as lines ``result: <what> = <value> (target <t>)``;
for the few that print their own format, a pattern below reads the ratio from it. ``make bench``
runs this; it is not part of the tests (timings depend on the machine and its load).

    python benchmarks/run_all.py                  # every benchmark
    python benchmarks/run_all.py mixture_score    # some of them
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULT = re.compile(r"^result: (?P<what>.+) = (?P<value>\S+) .*?\(target (?P<target>.+?)\)(?P<miss>\s+NOT MET)?\s*$")
# Benchmarks that print in their own format: (pattern, what, target).
OTHER_FORMATS = {
    "finite_class_erm": [(re.compile(r"^speed-up: (?P<value>\S+)$"), "finite-class ERM vs looped dsm_loss", "(none)")],
    "gmm_vs_sklearn": [(re.compile(r"^\s*(?P<what>\S.*?)\s+[\d.]+\s+[\d.]+\s+(?P<value>[\d.]+x)$"),
                        "fit time / scikit-learn's", "(none)")],
}
SKIP = {"run_all"}


def run(name: str) -> tuple[list[tuple[str, str, str, str]], int]:
    """Run one benchmark; its result rows and exit status."""
    proc = subprocess.Popen([sys.executable, str(HERE / f"{name}.py"), "--quick"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=HERE.parent)
    rows = []
    for line in proc.stdout:
        print(line, end="", flush=True)
        line = line.rstrip("\n")
        match = RESULT.match(line)
        if match:
            met = "NOT MET" if match["miss"] else ("met" if match["target"] != "(none)" else "")
            rows.append((match["what"], match["value"], match["target"], met))
        for pattern, what, target in OTHER_FORMATS.get(name, []):
            other = pattern.match(line)
            if other:
                label = f"{what}: {other.groupdict().get('what')}" if other.groupdict().get("what") else what
                rows.append((label, other["value"], target, ""))
    return rows, proc.wait()


def main() -> None:
    names = sys.argv[1:] or sorted(p.stem for p in HERE.glob("*.py") if p.stem not in SKIP)
    table, failed = [], []
    for name in names:
        print(f"\n===== {name} --quick =====", flush=True)
        rows, status = run(name)
        if status != 0:
            failed.append(name)
        table += [(name, *row) for row in rows] or [(name, "(no result line; see its output)", "", "", "")]
    width = max(len(f"{b}: {w}") for b, w, *_ in table)
    print(f"\n{'benchmark: measured':<{width}}  {'value':>10}  {'target':<14} ")
    for bench, what, value, target, met in table:
        print(f"{f'{bench}: {what}':<{width}}  {value:>10}  {target:<14} {met}")
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
        sys.exit(1)


if __name__ == "__main__":
    main()
