"""The publishing workflow is valid (GitHub's workflow schema) and runs the README's commands."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"


def linter() -> str | None:
    local = Path(sys.executable).parent / "check-jsonschema"
    return str(local) if local.exists() else shutil.which("check-jsonschema")


@pytest.mark.skipif(linter() is None, reason="check-jsonschema not installed (it is in requirements.txt)")
def test_workflow_matches_the_github_actions_schema(tmp_path):
    ok = subprocess.run([linter(), "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
                        capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    broken = tmp_path / "broken.yml"  # the linter does reject a bad workflow
    broken.write_text(WORKFLOW.read_text().replace("runs-on:", "runs_on:"))
    bad = subprocess.run([linter(), "--builtin-schema", "vendor.github-workflows", str(broken)],
                         capture_output=True, text=True)
    assert bad.returncode != 0


def test_workflow_runs_the_readme_commands_and_publishes_main_only():
    flow = yaml.safe_load(WORKFLOW.read_text())
    steps = flow["jobs"]["book"]["steps"]
    commands = [s.get("run", "") for s in steps]
    readme = (ROOT / "README.md").read_text()
    for cmd in ("make test", "make book", "make test-site"):
        assert any(c.startswith(cmd) for c in commands), cmd
        assert cmd in readme
    assert [c.split()[1] for c in commands if c.startswith("make")] == ["test", "book", "test-site"]
    deploy = next(s for s in steps if "gh-pages" in s.get("uses", "") or "gh-pages" in s.get("name", ""))
    assert "refs/heads/main" in deploy["if"] and deploy["with"]["publish_dir"] == "_build/html"
    assert next(s for s in steps if "checkout" in s.get("uses", ""))["with"]["fetch-depth"] == 0
