"""Gradable exercises: answers registered by label and checked against ``lib``'s references.

:mod:`lib.assignments.core` holds the machinery (:func:`answer`, :func:`check`, :class:`Check`);
each other module of this package registers the checks of one chapter's exercises.
"""

from .core import (
    STATUSES,
    Check,
    ReferenceCalled,
    Result,
    allclose,
    answer,
    check,
    grade,
    grade_report,
    log_uniform,
    register_check,
    registered_answers,
    registered_checks,
)

__all__ = ["STATUSES", "Check", "ReferenceCalled", "Result", "allclose", "answer", "check", "grade", "grade_report",
           "log_uniform", "register_check", "registered_answers", "registered_checks"]
