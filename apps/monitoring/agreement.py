"""When two revisions' predictions for the same request agree: the rule the local source applies row by row and
the Azure Monitor query spells in KQL (keep the two in step).

A request's ``outputs`` (its sampled rows' predictions, in order) agree when both lists have the same length and
every row agrees. A row is a value (a label, a number) or, for models answering frames, an object: objects
agree when they have the same keys and agree field by field. Two numbers agree when they differ by at most
``TOLERANCE`` times the larger of 1 and their magnitudes: an absolute 1e-6 for probabilities and scores
in [-1, 1], a relative 1e-6 beyond. That is loose enough for the same model computed another way (float32
runtimes, a compiled tree ensemble: probabilities within 5e-7 of scikit-learn's) and far tighter than any change
of model that matters. Anything else (labels, strings, booleans, null, nested lists) must be equal.
"""

from __future__ import annotations

import math

__all__ = ["TOLERANCE", "outputs_agree"]

TOLERANCE = 1e-6


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _cell(x, y, differences: list[float]) -> bool:
    if _number(x) and _number(y):
        difference = abs(float(x) - float(y))
        if math.isfinite(difference):
            differences.append(difference)
        return difference <= TOLERANCE * max(1.0, abs(float(x)), abs(float(y)))
    return type(x) is type(y) and x == y


def _row(x, y, differences: list[float]) -> bool:
    if isinstance(x, dict) and x and isinstance(y, dict):
        fields = [_cell(value, y.get(key), differences) for key, value in x.items()]  # every difference counts
        return len(x) == len(y) and all(fields)
    return _cell(x, y, differences)


def outputs_agree(stable: list, candidate: list) -> tuple[bool, float | None]:
    """Whether two requests' ``outputs`` agree, and the largest absolute difference between two of their
    numeric predictions (None when no pair of rows held numbers)."""
    differences: list[float] = []
    same = [_row(x, y, differences) for x, y in zip(stable, candidate, strict=False)]
    return len(stable) == len(candidate) and all(same), max(differences, default=None)
