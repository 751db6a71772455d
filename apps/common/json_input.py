"""JSON from outside (API bodies, form fields) is parsed here, with a limit on how deeply it may nest.

Python's parser recurses once per level: about 1,000 levels (a 2 KB body) exhaust the interpreter's stack and
raise ``RecursionError``, which is no ``ValueError`` and so went past every parser's error handling as a 500.
Nothing the control plane accepts nests beyond a few levels, so anything deeper than ``MAX_DEPTH`` is refused
with a message naming the limit.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["MAX_DEPTH", "JSONTooDeep", "loads"]

MAX_DEPTH = 64


class JSONTooDeep(ValueError):
    def __init__(self) -> None:
        super().__init__(f"The JSON is nested deeper than {MAX_DEPTH} levels; send a flatter document.")


def loads(text: str | bytes, **kwargs: Any) -> Any:
    """``json.loads``, raising :class:`JSONTooDeep` (a ``ValueError``) for input nested deeper than MAX_DEPTH."""
    try:
        value = json.loads(text, **kwargs)
    except RecursionError:
        raise JSONTooDeep() from None
    if _depth(value) > MAX_DEPTH:
        raise JSONTooDeep()
    return value


def _depth(value: Any) -> int:
    """How deeply lists and objects nest in ``value`` (a scalar is 0), without recursion."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            break
        stack.extend((child, level + 1) for child in children)
    return deepest
