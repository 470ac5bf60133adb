"""The grading machinery on a toy exercise: each status arises for the reason it names."""

from __future__ import annotations

import pytest
import torch

import lib
from lib.assignments import core
from lib.assignments.core import Check, allclose, answer, check, log_uniform, register_check

LABEL = "ex-selftest-1"


def _inputs(gen: torch.Generator) -> dict:
    return {"x": torch.randn(5, generator=gen, dtype=torch.float64), "t": log_uniform(gen, 1e-3, 5.0)}


def _reference(x, t):
    return -x / lib.sigma2(t)


@pytest.fixture(autouse=True)
def toy_check():
    register_check(Check(LABEL, _reference, _inputs, allclose(1e-10), forbidden=("lib.forward.sigma2",)))
    yield
    core._CHECKS.pop(LABEL, None)
    core._ANSWERS.pop(LABEL, None)


def _stub(x, t):
    """The score of N(0, s_t^2)."""
    raise NotImplementedError(f"{LABEL}: write this function")


def test_right_answer_passes_and_says_public():
    def right(x, t):
        import math
        return -x / (1 - math.exp(-2 * t))
    result = check(LABEL, answers={LABEL: right})
    assert result.status == "PASS" and "public checks passed on 20 inputs" in result.message
    assert "all tests passed" not in str(result).lower()
    assert check(LABEL, answers={LABEL: right}, seed=99, n_inputs=50).n_inputs == 50


def test_stub_is_not_attempted_but_a_deeper_notimplemented_is_an_error():
    assert check(LABEL, answers={LABEL: _stub}).status == "NOT ATTEMPTED"

    def calls_stub(x, t):
        return _stub(x, t)
    assert check(LABEL, answers={LABEL: calls_stub}).status == "ERROR"


def test_wrong_answer_shows_input_expected_and_returned():
    result = check(LABEL, answers={LABEL: lambda x, t: -x / (2 * t)})
    assert result.status == "WRONG"
    assert set(result.details) == {"input", "expected", "returned"}
    assert "_reference" not in str(result.details)


def test_calling_the_reference_is_refused_everywhere_it_is_bound():
    from lib.forward import sigma2
    for cheat in (lambda x, t: -x / lib.sigma2(t), lambda x, t: -x / sigma2(t),
                  lambda x, t: -x / lib.forward.sigma2(t)):
        result = check(LABEL, answers={LABEL: cheat})
        assert result.status == "WRONG" and "refused" in result.message
    assert lib.sigma2(1.0) == pytest.approx(1 - torch.exp(torch.tensor(-2.0)).item())


def test_errors_and_missing_answers_never_raise():
    assert check(LABEL, answers={LABEL: lambda x, t: x @ "a"}).status == "ERROR"
    assert check(LABEL, answers={}).status == "NOT ATTEMPTED"
    assert check("ex-no-such-exercise").status == "ERROR"
    assert check(LABEL, answers={LABEL: lambda x, t: x[:2]}).status == "WRONG"
    assert check(LABEL, answers={LABEL: lambda x, t: x * float("nan")}).status == "WRONG"


def test_answer_decorator_registers_and_returns_the_function():
    @answer(LABEL)
    def mine(x, t):
        return x
    assert core.registered_answers()[LABEL] is mine
    with pytest.raises(ValueError, match="label"):
        answer("sm-2")
    with pytest.raises(ValueError, match="already registered"):
        register_check(Check(LABEL, _reference, _inputs, allclose(1e-10)))


def test_a_module_imported_while_the_names_resolve_is_guarded_too(monkeypatch):
    """Resolving a forbidden name can import a lib module that binds another forbidden name
    (``from .hardness import quadrature_1d``); that binding is guarded as well."""
    import sys
    import types

    from lib.forward import sigma2
    late = types.ModuleType("lib._late_probe")
    resolve = core._resolve

    def importing_resolve(name):
        if name == "lib.forward.sigma":  # stands for an import the first name's resolution triggers
            late.s2 = sigma2
            monkeypatch.setitem(sys.modules, "lib._late_probe", late)
        return resolve(name)

    monkeypatch.setattr(core, "_resolve", importing_resolve)
    core._CHECKS.pop(LABEL)
    register_check(Check(LABEL, _reference, _inputs, allclose(1e-10),
                         forbidden=("lib.forward.sigma", "lib.forward.sigma2")))
    # one input: with more, the module is listed (and guarded) from the second input on anyway
    result = check(LABEL, n_inputs=1, answers={LABEL: lambda x, t: -x / sys.modules["lib._late_probe"].s2(t)})
    assert result.status == "WRONG" and "refused" in result.message
    assert late.s2 is sigma2


def test_a_module_first_imported_by_the_answer_gets_its_references_back(monkeypatch):
    """A lib module first imported while the answer runs copies whatever its imports are bound
    to then, i.e. the guard; after the check it holds the reference again, so the rest of the
    notebook can call it."""
    import sys
    import types

    from lib.forward import sigma2

    def answer_importing_a_module(x, t):
        late = types.ModuleType("lib._late_import_probe")
        late.s2 = lib.forward.sigma2  # what `from .forward import sigma2` binds during the answer
        monkeypatch.setitem(sys.modules, "lib._late_import_probe", late)
        return -x / (1 - torch.exp(torch.tensor(-2.0 * t, dtype=torch.float64)))

    result = check(LABEL, n_inputs=2, answers={LABEL: answer_importing_a_module})
    assert result.status == "PASS", result.message
    assert sys.modules["lib._late_import_probe"].s2 is sigma2
