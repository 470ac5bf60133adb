"""Gradable exercises: an answer is a function registered under its exercise's label.

A gradable exercise asks for a function that a student writes in a few lines. In the
chapter, the solution is decorated with :func:`answer` and a check cell (hidden on the
web page, run by the book build and the tests) calls :func:`check`::

    @lib.answer("ex-sm-2")
    def two_component_score(x, t):
        "The exact score of the noised two-component mixture."
        ...

    lib.check("ex-sm-2")   # PASS / NOT ATTEMPTED / WRONG / ERROR

A :class:`Check` compares the registered answer with a reference from ``lib`` on random
inputs (its ``inputs`` draws them), with a tolerance from the mathematics, and refuses an
answer that calls one of the ``forbidden`` references while it runs. :func:`check` never
raises: a stub's own ``NotImplementedError`` is NOT ATTEMPTED, a mismatch is WRONG with the
input and both values (never the check's code), any other failure is ERROR. Its message
says "public checks passed on N inputs": the inputs a grader uses (another seed, more
of them) are the only thing it can keep hidden, since the library is public.
"""

from __future__ import annotations

import importlib
import json
import math
import pkgutil
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch

STATUSES = ("PASS", "NOT ATTEMPTED", "WRONG", "ERROR")
_ANSWERS: dict[str, Callable[..., Any]] = {}
_CHECKS: dict[str, Check] = {}


class ReferenceCalled(RuntimeError):
    """Raised inside an answer that calls a reference it was asked to write itself."""


@dataclass(frozen=True)
class Check:
    """How one exercise's answer is checked.

    ``inputs(generator)`` draws one input as a dict of keyword arguments; ``reference(**kw)``
    is the expected value; ``close(expected, returned, kw)`` says whether a returned value is
    right (a tolerance the mathematics gives: float64 rounding for closed forms, standard
    errors for estimates); ``forbidden`` names references (``"lib.mixtures.GaussianMixture.score"``)
    that raise :class:`ReferenceCalled` while the answer runs; ``n_public`` inputs are drawn
    by :func:`check`, ``n_hidden`` by a grader.
    """

    label: str
    reference: Callable[..., Any]
    inputs: Callable[[torch.Generator], dict[str, Any]]
    close: Callable[[Any, Any, dict[str, Any]], bool]
    forbidden: tuple[str, ...] = ()
    n_public: int = 20
    n_hidden: int = 200
    chapter: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.label, str) or not self.label.startswith("ex-"):
            raise ValueError(f"label must be an exercise label starting with 'ex-', got {self.label!r}")
        for name in ("reference", "inputs", "close"):
            if not callable(getattr(self, name)):
                raise TypeError(f"{name} of check {self.label!r} must be callable")
        if not (isinstance(self.n_public, int) and isinstance(self.n_hidden, int)
                and 1 <= self.n_public <= self.n_hidden):
            raise ValueError(f"need 1 <= n_public <= n_hidden for check {self.label!r}")


@dataclass(frozen=True)
class Result:
    """What :func:`check` found; its text is the message a student sees."""

    label: str
    status: str
    n_inputs: int
    message: str
    details: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.label}: {self.status} — {self.message}"

    __repr__ = __str__


def answer(label: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated function as the answer to exercise ``label``; return it unchanged."""
    if not isinstance(label, str) or not label.startswith("ex-"):
        raise ValueError(f"label must be an exercise label starting with 'ex-', got {label!r}")

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(fn):
            raise TypeError(f"@answer({label!r}) must decorate a function, got {type(fn).__name__}")
        _ANSWERS[label] = fn
        return fn

    return register


def register_check(spec: Check) -> Check:
    """Add ``spec`` to the registry (one check per label)."""
    if not isinstance(spec, Check):
        raise TypeError(f"spec must be a Check, got {type(spec).__name__}")
    if spec.label in _CHECKS and _CHECKS[spec.label] is not spec:
        raise ValueError(f"a check for {spec.label!r} is already registered")
    _CHECKS[spec.label] = spec
    return spec


def registered_checks() -> dict[str, Check]:
    """Every check of every chapter, by label (importing the chapters' check modules)."""
    package = importlib.import_module("lib.assignments")
    for info in pkgutil.iter_modules(package.__path__):
        if info.name != "core":
            importlib.import_module(f"lib.assignments.{info.name}")
    return dict(_CHECKS)


def registered_answers() -> dict[str, Callable[..., Any]]:
    """The answers registered so far in this session, by label."""
    return dict(_ANSWERS)


def check(label: str, *, seed: int = 0, n_inputs: int | None = None,
          answers: Mapping[str, Callable[..., Any]] | None = None) -> Result:
    """Check the answer registered under ``label`` on ``n_inputs`` random inputs (never raises).

    ``seed`` and ``n_inputs`` (default: the check's public count) choose the inputs; a grader
    passes its own. ``answers`` overrides the registry (for grading and tests).
    """
    try:
        spec = registered_checks().get(label)
    except Exception as exc:  # a broken check module must not break a student's notebook
        return _glued(Result(str(label), "ERROR", 0, f"the checks could not be loaded: {exc!r}"))
    if spec is None:
        return _glued(Result(str(label), "ERROR", 0, f"no check is registered for {label!r}"))
    fn = (answers if answers is not None else _ANSWERS).get(label)
    if fn is None:
        return _glued(Result(label, "NOT ATTEMPTED", 0,
                             f"no function is registered; decorate yours with @answer({label!r})"))
    n = spec.n_public if n_inputs is None else int(n_inputs)
    return _glued(_run(spec, fn, seed, n, public=n_inputs is None))


GRADE_MARKER = "LEARNING-THE-SCORE-GRADES "


def grade(labels: Iterable[str], *, seed: int, n_inputs: int | None = None,
          answers: Mapping[str, Callable[..., Any]] | None = None) -> list[Result]:
    """Check each of ``labels`` as a grader does: its own ``seed`` and ``n_inputs`` inputs
    (default: each check's ``n_hidden``). Never raises; an unknown label is ERROR."""
    results = []
    for label in labels:
        spec = _CHECKS.get(label) or registered_checks().get(label)
        n = n_inputs if n_inputs is not None else (spec.n_hidden if spec is not None else None)
        results.append(check(label, seed=seed, n_inputs=n, answers=answers))
    return results


def grade_report(labels: Iterable[str], *, seed: int, n_inputs: int | None = None) -> str:
    """:func:`grade` as one machine-readable line (``GRADE_MARKER`` + JSON) for a grading script."""
    rows = [{"label": r.label, "status": r.status, "n_inputs": r.n_inputs, "message": r.message}
            for r in grade(labels, seed=seed, n_inputs=n_inputs)]
    return GRADE_MARKER + json.dumps(rows, sort_keys=True)


def _run(spec: Check, fn: Callable[..., Any], seed: int, n: int, public: bool) -> Result:
    generator = torch.Generator().manual_seed(int(seed))
    for i in range(n):
        try:
            kw = spec.inputs(generator)
            expected = spec.reference(**_copy(kw))
        except Exception as exc:  # the check itself failed: not the student's fault
            return Result(spec.label, "ERROR", i, f"the check failed to build input {i}: {exc!r}")
        outcome = _call(spec, fn, kw)
        if isinstance(outcome, Result):
            return outcome
        try:
            ok = bool(spec.close(expected, outcome, kw))
        except Exception:
            ok = False
        if not ok:
            return Result(spec.label, "WRONG", i, f"input {i} gives a value that differs from the expected one",
                          {"input": _show(kw), "expected": _show(expected), "returned": _show(outcome)})
    which = "public checks" if public else "checks"
    return Result(spec.label, "PASS", n, f"{which} passed on {n} inputs")


def _call(spec: Check, fn: Callable[..., Any], kw: dict[str, Any]) -> Any:
    try:
        with _forbid(spec.forbidden, fn):
            return fn(**_copy(kw))
    except NotImplementedError as exc:
        if _raised_by(exc, fn):
            return Result(spec.label, "NOT ATTEMPTED", 0, "the function still raises NotImplementedError")
        return Result(spec.label, "ERROR", 0, "NotImplementedError from code the answer calls",
                      {"traceback": _student_traceback(exc)})
    except ReferenceCalled as exc:
        return Result(spec.label, "WRONG", 0, f"refused: {exc}")
    except Exception as exc:
        return Result(spec.label, "ERROR", 0, f"the function raised {type(exc).__name__}: {exc}",
                      {"traceback": _student_traceback(exc)})


def _raised_by(exc: BaseException, fn: Callable[..., Any]) -> bool:
    """Whether ``exc`` was raised in the body of ``fn`` itself (a stub), not deeper."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    code = getattr(fn, "__code__", None)
    return tb is not None and code is not None and tb.tb_frame.f_code is code


def _student_traceback(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    own = [f for f in frames if not f.filename.endswith(("assignments/core.py",))]
    return "".join(traceback.format_list(own[-4:])) + f"{type(exc).__name__}: {exc}"


@contextmanager
def _forbid(names: tuple[str, ...], fn: Callable[..., Any]) -> Iterator[None]:
    """Make each named reference raise while the answer runs, wherever it is bound."""
    saved: list[tuple[Any, str, Any]] = []
    # Resolve every name first: resolving may import a lib module, which may bind another name's
    # reference. Then list lib's modules once: sys.modules holds thousands of entries once torch,
    # scikit-learn and matplotlib are loaded, and scanning it per name and per input cost a check ~0.3 s
    originals = [_resolve(name) for name in names]
    spaces = [m for k, m in list(sys.modules.items()) if k == "lib" or k.startswith("lib.")]
    guards: dict[int, tuple[Any, Any]] = {}  # id(guard) -> (guard, the reference it stands for)
    try:
        for name, original in zip(names, originals):
            guard = _guard(name)
            guards[id(guard)] = (guard, original)
            for owner, attr in _bindings(name, original, fn, spaces):
                saved.append((owner, attr, owner.__dict__[attr] if isinstance(owner, type)
                               else _get(owner, attr)))
                _set(owner, attr, guard)
        yield
    finally:
        for owner, attr, value in reversed(saved):
            _set(owner, attr, value)
        _unbind_new(guards, {id(m) for m in spaces})


def _unbind_new(guards: dict[int, tuple[Any, Any]], listed: set[int]) -> None:
    """Give back the references in lib modules first imported while the answer ran: such a module
    bound a guard (``from .x import f`` copies whatever ``x.f`` was then) and would keep it."""
    for key, module in list(sys.modules.items()):
        if (key == "lib" or key.startswith("lib.")) and id(module) not in listed:
            for attr, value in list(vars(module).items()):
                if id(value) in guards and value is guards[id(value)][0]:
                    setattr(module, attr, guards[id(value)][1])


def _resolve(name: str) -> Any:
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        module = sys.modules.get(".".join(parts[:cut])) or _try_import(".".join(parts[:cut]))
        if module is not None:
            obj = module
            for part in parts[cut:]:
                obj = getattr(obj, part)
            return obj
    raise ValueError(f"forbidden reference {name!r} does not exist")


def _try_import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _bindings(name: str, original: Any, fn: Callable[..., Any], spaces: list[Any]) -> list[tuple[Any, str]]:
    """Every place the answer could reach ``original`` from: its class, lib's modules (``spaces``), fn's globals."""
    owner_name, _, attr = name.rpartition(".")
    owner = _resolve(owner_name)
    if isinstance(owner, type):  # patch the class that defines it, so subclasses see the guard too
        return [(next(k for k in owner.__mro__ if attr in k.__dict__), attr)]
    found = [(owner, attr)]
    for space in spaces:
        for key, value in list(vars(space).items()):
            if value is original and (space, key) != (owner, attr):
                found.append((space, key))
    glob = getattr(fn, "__globals__", {})
    found += [(glob, key) for key, value in list(glob.items()) if value is original]
    cells = getattr(fn, "__closure__", None) or ()
    found += [(cell, "cell_contents") for cell in cells if _cell_value(cell) is original]
    return found


def _cell_value(cell: Any) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell
        return None


def _get(owner: Any, attr: str) -> Any:
    return owner[attr] if isinstance(owner, dict) else getattr(owner, attr)


def _set(owner: Any, attr: str, value: Any) -> None:
    if isinstance(owner, dict):
        owner[attr] = value
    else:
        setattr(owner, attr, value)


def _guard(name: str) -> Callable[..., Any]:
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise ReferenceCalled(f"the answer calls {name}, which this exercise asks you to write yourself")
    return refuse


def _copy(kw: dict[str, Any]) -> dict[str, Any]:
    """Fresh copies of tensor inputs, so an answer that edits its input in place cannot fool the check."""
    return {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in kw.items()}


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={_show(v)}" for k, v in value.items()) + "}"
    if isinstance(value, torch.Tensor):
        flat = value.detach().reshape(-1)
        shown = ", ".join(f"{x:.6g}" for x in flat[:6].tolist())
        more = ", ..." if flat.numel() > 6 else ""
        return f"tensor(shape={tuple(value.shape)}, values=[{shown}{more}])"
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.6g}"
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."


def _glued(result: Result) -> Result:
    """Record the status for the book's tests (myst-nb glue); silent where myst-nb is absent."""
    from ..book import _glue_hidden

    _glue_hidden(f"check:{result.label}", result.status)
    return result


def allclose(rtol: float, atol: float = 0.0) -> Callable[[Any, Any, dict[str, Any]], bool]:
    """A ``close`` for tensors: same shape, finite, ``|returned - expected| <= atol + rtol |expected|``."""
    def close(expected: Any, returned: Any, kw: dict[str, Any]) -> bool:
        try:  # Python floats are float64 here (torch would read them as float32)
            returned = torch.as_tensor(returned, dtype=torch.float64)
            expected = torch.as_tensor(expected, dtype=torch.float64)
        except (TypeError, ValueError, RuntimeError):
            return False
        if returned.shape != expected.shape or not torch.isfinite(returned).all():
            return False
        return bool(((returned - expected).abs() <= atol + rtol * expected.abs()).all())
    return close


def log_uniform(generator: torch.Generator, low: float, high: float) -> float:
    """One draw of ``exp(U[log low, log high])`` (times over the book's range, e.g. 1e-3 to 5)."""
    u = torch.rand((), generator=generator, dtype=torch.float64).item()
    return math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
