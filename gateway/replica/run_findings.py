"""A sync run's stored findings (warnings about the source) as short lines, for the CLI and the IT console."""

from __future__ import annotations

from typing import Any


def finding_lines(findings: dict[str, Any] | None) -> list[str]:
    """One line per warning: ``label: name: detail``, positions as the source gives them."""
    out = []
    for key, value in (findings or {}).items():
        label = key.replace("_", " ")
        if isinstance(value, dict) and set(value) == {"count", "first"}:
            out.append(f"{label}: {value['count']} (first: {', '.join(value['first'])})")
        elif isinstance(value, dict) and all(isinstance(v, int) for v in value.values()):
            out.append(f"{label}: " + ", ".join(f"{k}: {v}" for k, v in value.items()))
        elif isinstance(value, dict):
            for name, detail in value.items():
                if isinstance(detail, dict) and set(detail) == {"count", "first"}:
                    detail = f"{detail['count']} (first: {', '.join(detail['first'])})"
                elif isinstance(detail, dict):
                    detail = ", ".join(f"{k}: {v}" for k, v in detail.items())
                elif isinstance(detail, list):
                    detail = ", ".join(str(d) for d in detail)
                out.append(f"{label}: {name}: {detail}")
        else:
            out.append(f"{label}: {value}")
    return out
