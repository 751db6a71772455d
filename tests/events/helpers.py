"""The signature check exactly as docs/events.md documents it: the test runs the documented code."""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def documented_verify():
    """The ``verify`` function of the docs' "Verifying a signature" Python block."""
    text = DOC.read_text()
    block = re.search(r"<!-- verify -->\s*```python\n(.*?)```", text, re.S)
    assert block, "docs/events.md lost its verification snippet"
    namespace: dict = {}
    exec(compile(block.group(1), str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation
    return namespace["verify"]
