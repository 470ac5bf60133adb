"""Every registered check catches a plausible wrong answer and refuses one that calls the reference."""

from __future__ import annotations

import importlib
import pkgutil

import gradable
import pytest

from lib.assignments import check, registered_checks


def _examples(kind: str) -> dict:
    found: dict = {}
    for info in pkgutil.iter_modules(gradable.__path__):
        found.update(getattr(importlib.import_module(f"gradable.{info.name}"), kind))
    return found


WRONG, CALLS_REFERENCE = _examples("WRONG"), _examples("CALLS_REFERENCE")
LABELS = sorted(registered_checks())


def test_every_check_has_both_examples():
    missing = [label for label in LABELS if label not in WRONG or label not in CALLS_REFERENCE]
    assert not missing, f"checks without a wrong answer or a reference-calling answer: {missing}"


@pytest.mark.parametrize("label", LABELS)
def test_plausible_wrong_answer_is_wrong(label):
    if label not in WRONG:
        pytest.skip("no example (reported by test_every_check_has_both_examples)")
    result = check(label, answers={label: WRONG[label]})
    assert result.status == "WRONG", result
    assert "refused" not in result.message


@pytest.mark.parametrize("label", LABELS)
def test_answer_calling_the_reference_is_refused(label):
    if label not in CALLS_REFERENCE:
        pytest.skip("no example (reported by test_every_check_has_both_examples)")
    result = check(label, answers={label: CALLS_REFERENCE[label]})
    assert result.status == "WRONG" and "refused" in result.message, result
