"""The documents that point at tests point at tests that exist."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_every_test_named_in_the_security_document_exists() -> None:
    """docs/security.md names `file.py::test` (or `::test` after a file): each must be there."""
    named, current = [], None
    for token in re.findall(r"`([^`]+)`", (REPO / "docs" / "security.md").read_text(encoding="utf-8")):
        if ".py" in token:
            current, _, test = token.partition("::")
            named.append((current, test))
        elif token.startswith("::") and current:
            named.append((current, token[2:]))
    assert len(named) > 40
    missing = [f"{file}::{test}" for file, test in named
               if not (REPO / "tests" / file).is_file() or (test and f"def {test}(" not in (REPO / "tests" / file).read_text())]
    assert missing == []
