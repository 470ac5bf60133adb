"""Per chapter, for each gradable exercise: a plausible wrong answer and one that calls the reference.

Each module ``tests/gradable/<chapter>.py`` defines ``WRONG`` and ``CALLS_REFERENCE``, dicts from
an exercise label to a function with the answer's signature; ``tests/test_assignments_examples.py``
asserts that every registered check marks the first WRONG and refuses the second.
"""
