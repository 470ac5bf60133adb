"""Intra-op threads: where they pay and where they hurt.

torch splits one operation across intra-op (OpenMP) threads, and every split ends in a
barrier where the threads wait for each other. For a large matrix product (a kernel matrix,
an exact mixture score on 1e5 points) the work dwarfs the barrier and a second thread
nearly halves the time. For the book's loops of small steps (a width-64 network on a
minibatch, a sampler step on a few thousand points) it does not: a step takes well under a
millisecond, so on a quiet machine a second thread gains little, and on a busy one a
descheduled thread stalls the barrier for a whole scheduler slice. 300 Adam steps of a
width-64 MLP took 2.2 s on one thread and 14-17 s on two with other processes holding the
cores.

So lib decides per kind of work. Its loops of small steps (:func:`lib.train_dsm`,
:func:`lib.batched.train_batched`, :func:`lib.sample`) run on :func:`small_work_threads`
threads (1 unless set with :func:`set_small_work_threads` or the environment variable
``LIB_SMALL_WORK_THREADS``), and restore the
caller's setting when they return. Single large computations keep the process-wide setting
(torch's default: one thread per core, or ``OMP_NUM_THREADS``). A caller who knows better
wraps the call in ``with lib.threads.use(n):``, which these loops then respect.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import torch

from ._checks import check_int

F = TypeVar("F", bound=Callable)

_setting: dict[str, int | None] = {"small": None}
_explicit = [0]  # depth of enclosing ``use(n)`` blocks: inside one, the caller has chosen


def _from_env() -> int | None:
    raw = os.environ.get("LIB_SMALL_WORK_THREADS", "1").strip().lower()
    if raw in ("", "none", "default"):
        return None
    try:
        return check_int(int(raw), "LIB_SMALL_WORK_THREADS")
    except ValueError as err:
        raise ValueError(f"LIB_SMALL_WORK_THREADS must be an integer >= 1 or 'none', got {raw!r}") from err


_setting["small"] = _from_env()


def small_work_threads() -> int | None:
    """The intra-op threads lib's loops of small steps use (``None``: torch's own setting)."""
    return _setting["small"]


def set_small_work_threads(n: int | None) -> None:
    """Set :func:`small_work_threads`: an integer ``>= 1``, or ``None`` to leave torch's
    process-wide setting alone in those loops too."""
    _setting["small"] = None if n is None else check_int(n, "n")


@contextmanager
def use(n: int) -> Iterator[None]:
    """Run the block on ``n`` intra-op threads (``torch.set_num_threads``), then restore.

    Inside the block lib's small-work loops keep ``n`` instead of their own choice.
    """
    n = check_int(n, "n")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    _explicit[0] += 1
    try:
        yield
    finally:
        _explicit[0] -= 1
        torch.set_num_threads(before)


def small_work(fn: F) -> F:
    """Decorator for a loop of small steps: run ``fn`` on :func:`small_work_threads` threads
    unless the caller chose a number with :func:`use` (or the setting is ``None``)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        n = _setting["small"]
        if n is None or _explicit[0] or torch.get_num_threads() == n:
            return fn(*args, **kwargs)
        before = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(before)

    return wrapper  # type: ignore[return-value]
