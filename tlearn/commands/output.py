"""What a command prints when it is done: the result as JSON with --json, else a short summary for people."""
from __future__ import annotations

import json
import unicodedata

_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def one_line(text) -> str:
    """`text` (a file or class name) fit for one field of line-oriented output: newlines, tabs and other control
    characters are written as escapes (\\n, \\t, \\x1b ...), so a name cannot split or forge a line."""
    return "".join(_ESCAPES.get(c) or (repr(c)[1:-1] if unicodedata.category(c) in ("Cc", "Zl", "Zp") else c)
                   for c in str(text))


def emit(as_json: bool, result: dict | list, lines: list[str]) -> None:
    """Print `result` as indented JSON (--json) or the human-readable `lines`."""
    print(json.dumps(result, indent=2) if as_json else "\n".join(lines))


def _figure(value) -> str:
    return f"{value:.4f}" if isinstance(value, float) else str(value)


def split_lines(summary: dict, keys: tuple[str, ...] = ("accuracy", "balanced_accuracy", "macro_f1")) -> list[str]:
    """One line per split of a split_summary: its headline figures, the first with its interval, and n."""
    lines = []
    for split in ("val", "test"):
        if split not in summary:
            continue
        m = summary[split]
        shown = [k for k in keys if k in m] or [k for k in m if isinstance(m[k], float)][:3]
        parts = []
        for k in shown:
            ci = m.get("ci95", {}).get(k)
            parts.append(f"{k} {_figure(m[k])}" + (f" [{ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""))
        lines.append(f"{split:<5} " + ", ".join(parts) + f" (n={m.get('n')})")
    return lines
