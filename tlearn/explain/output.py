"""`tlearn explain --out DIR`: PNG overlays, index.json and index.html (same look as the run report).

DIR is new, empty, or an earlier explain output (index.json with "tool": "tlearn explain"); the files that
earlier output listed are replaced, other files are never touched. Any other non-empty folder needs --overwrite.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path

from jinja2 import Environment, StrictUndefined

from .._version import __version__
from ..data.layout import SkippedFile
from ..errors import TlearnError
from ..files import atomic_path, atomic_write_text
from ..pages import HEAD, STYLE, fmt
from .explain import ImageExplanation
from .overlay import encode, enlarged, overlay

INDEX_JSON, INDEX_HTML = "index.json", "index.html"
TOOL = "tlearn explain"


def _earlier_files(out: Path) -> list[str] | None:
    """Files an earlier explain output in `out` wrote; None when `out` holds no explain output."""
    try:
        index = json.loads((out / INDEX_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(index, dict) or index.get("tool") != TOOL:
        return None
    return [f for f in index.get("files", []) if isinstance(f, str) and "/" not in f and "\\" not in f
            and not f.startswith(".")]


def prepare_out(out: Path, overwrite: bool) -> None:
    """Refuse a file, or a non-empty folder that is not an earlier explain output (unless overwrite); clear what
    an earlier explain output wrote there."""
    if out.exists() and not out.is_dir():
        raise TlearnError(f"--out {out} exists and is not a folder; choose a folder for the heatmaps.")
    if not out.is_dir() or not any(out.iterdir()):
        out.mkdir(parents=True, exist_ok=True)
        return
    earlier = _earlier_files(out)
    if earlier is None:
        if not overwrite:
            raise TlearnError(f"--out {out} is a folder with files that tlearn explain did not write; choose a new "
                              "or empty folder, or add --overwrite to write into it (its other files are kept).")
        return
    for name in earlier:
        (out / name).unlink(missing_ok=True)


def _safe(text: str, limit: int = 40) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")[:limit] or "x"


class ExplainWriter:
    """Writes each image's PNGs as it comes, then the index (JSON for machines, HTML for people)."""

    def __init__(self, out: Path, run: str, classes: list[str], method: str, target_layer: str, input_size: int):
        self.out = out
        self.classes = classes
        self.meta = {"tool": TOOL, "run": run, "method": method, "target_layer": target_layer,
                     "input_size": input_size, "classes": classes}
        self.images: list[dict] = []
        self.files: list[str] = []

    def _write_png(self, name: str, img) -> str:
        with atomic_path(self.out / name) as tmp:
            tmp.write_bytes(encode(img, "PNG"))
        self.files.append(name)
        return name

    def add(self, item: ImageExplanation) -> dict:
        stem = f"{len(self.images) + 1:04d}-{_safe(Path(item.path).stem)}"
        entry = {"path": item.path, "input": self._write_png(f"{stem}.png", enlarged(item.crop)),
                 "predicted": self.classes[item.predicted],
                 "probability": round(float(item.probabilities[item.predicted]), 6), "maps": []}
        for m in item.maps:
            name = self._write_png(f"{stem}.{_safe(self.classes[m.class_index])}.png", overlay(item.crop, m.heatmap))
            entry["maps"].append({"class": self.classes[m.class_index], "probability": round(m.probability, 6),
                                  "predicted": m.class_index == item.predicted, "file": name})
        self.images.append(entry)
        return entry

    def finish(self, skipped: Iterable[SkippedFile], seconds: float) -> Path:
        index = {**self.meta, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                 "seconds": round(seconds, 3), "images": self.images,
                 "skipped": [s.to_dict() for s in skipped], "files": [*self.files, INDEX_HTML, INDEX_JSON]}
        atomic_write_text(self.out / INDEX_HTML, _render(index))
        atomic_write_text(self.out / INDEX_JSON, json.dumps(index, indent=2) + "\n")
        return self.out / INDEX_HTML


PAGE = HEAD + r"""<body>
<header><div class="wrap"><h1>Where the model looks: {{ run_name }}</h1>
  <div class="sub">{{ method }} on layer <code>{{ target_layer }}</code> · {{ images | length }} image(s) ·
    {{ input_size }} px eval crop · run <code>{{ run }}</code></div></div></header>
<main class="wrap">
<section id="heatmaps">
  <h2>Heatmaps</h2>
  <p class="hint">Each row: the eval crop the model saw, then the class-activation map of the predicted class (and of
    any class asked for with --class). Red: regions that raise that class's score most; blue: little or none.
    A map shows where the evidence is, not that it is the right evidence.</p>
  {% for im in images %}
  <div class="gallery explain-row">
    <figure class="thumb"><img src="{{ im.input }}" alt="{{ im.path }}">
      <figcaption><span class="path" title="{{ im.path }}">{{ im.path.split("/")[-1] }}</span><br>predicted
        <b>{{ im.predicted }}</b> {{ im.probability | fmt(2) }}</figcaption></figure>
    {% for m in im.maps %}
    <figure class="thumb"><img src="{{ m.file }}" alt="heatmap of {{ m.class }} for {{ im.path }}">
      <figcaption>{% if m.predicted %}predicted{% else %}asked{% endif %} <b>{{ m.class }}</b>
        p = {{ m.probability | fmt(2) }}</figcaption></figure>
    {% endfor %}
  </div>
  {% endfor %}
</section>
{% if skipped %}<section id="skipped"><h2>Skipped files</h2><ul>
  {% for s in skipped %}<li><code>{{ s.path }}</code>: {{ s.reason }}</li>{% endfor %}</ul></section>{% endif %}
</main>
<footer class="wrap">Written by tlearn {{ version }} at {{ created }} in {{ seconds | fmt(1) }} s.</footer>
</body></html>
"""

_ENV = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
_ENV.filters["fmt"] = fmt


def _render(index: dict) -> str:
    run_name = Path(index["run"]).name
    return _ENV.from_string(PAGE).render(title=f"tlearn explain: {run_name}",
                                         style=STYLE + ".explain-row { margin-bottom: 12px; }",
                                         run_name=run_name, version=__version__, **index)
