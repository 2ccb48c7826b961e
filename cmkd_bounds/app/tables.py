"""Tables of rows (dicts): one CSV writer and one Markdown renderer for every table the tool writes."""

from __future__ import annotations

import csv
import io
import math


def fmt(v, digits: int = 4) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        return f"{v:.{digits}g}" if math.isfinite(v) else str(v)
    return str(v)


def csv_text(rows: list[dict], keys: list[str] | None = None) -> str:
    keys = keys or (list(rows[0]) if rows else [])
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (repr(v) if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def markdown(rows: list[dict], keys: list[str] | None = None, headers: list[str] | None = None,
             digits: int = 4) -> str:
    keys = keys or (list(rows[0]) if rows else [])
    head = headers or keys
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join(fmt(r.get(k), digits).replace("|", "\\|") for k in keys) + " |")
    return "\n".join(lines) + "\n"
