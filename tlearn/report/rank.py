"""The ranking of candidate sources: rank.json + rank.html for `tlearn rank --out`, and the view that a run's
report shows when `fit --backbone auto` chose its backbone."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from .._version import __version__
from ..errors import TlearnError
from ..files import atomic_write_text
from .html import render_text
from .templates import HEAD, STYLE

RANK_JSON, RANK_HTML = "rank.json", "rank.html"
FORMAT = "tlearn-rank"

RANK_TABLE = r"""<table class="data">
    <tr><th>#</th><th class="l">source</th><th class="l">kind</th><th class="l">metric</th><th>score</th><th>input px</th><th>seconds</th><th>features from cache</th>{% if rank.verified %}<th>probe val accuracy</th>{% endif %}</tr>
    {% for r in rank.rows %}<tr><td>{{ r.place }}</td><td class="l">{% if r.winner %}<b>{{ r.source }}</b>{% else %}{{ r.source }}{% endif %}</td><td class="l">{{ r.kind }}</td><td class="l">{{ r.metric }}</td><td>{{ r.score | fmt(4) }}</td><td>{{ r.input_size }}</td><td>{{ r.seconds | fmt(1) }}</td><td>{{ r.features_from_cache }}</td>{% if rank.verified %}<td>{{ r.probe_accuracy | fmt(4) }}</td>{% endif %}</tr>
    {% endfor %}</table>"""

RANK_PAGE = HEAD + r"""<body>
<header><div class="wrap"><h1>{{ title }}</h1>
  <div class="sub">data <code>{{ rank.data }}</code> · {{ rank.n_train | fmt }} training images scored · {{ rank.seconds | fmt(1) }} s</div></div></header>
<main class="wrap">
<section id="ranking">
  <h2>Sources, best first</h2>
  <p class="hint">{{ hint }}</p>
  """ + RANK_TABLE + r"""
</section>
</main>
<footer class="wrap">Written by tlearn {{ version }} at {{ generated }}. Self-contained: no network needed.</footer>
</body>
</html>
"""

HINT = ("Each score rates a source's features (LogME, H-score) or its own classifier's outputs (LEEP, NCE) on the "
        "train split, from one forward pass; higher is better, and scores compare only within a metric. Probe val "
        "accuracy, where shown, is what a linear probe on the source actually reached: the ground truth.")


def rank_view(record: dict) -> dict:
    """Rows with their place within their metric; the winner (first row of the first metric) marked."""
    rows, last, place = [], None, 0
    winner = record.get("winner")
    first_metric = (record.get("metrics") or [None])[0]
    for r in record.get("table", []):
        place = 1 if r.get("metric") != last else place + 1
        last = r.get("metric")
        rows.append({**r, "place": place, "source": r.get("source"),
                     "winner": r.get("source") == winner and r.get("metric") == first_metric and place == 1})
    return {"rows": rows, "verified": record.get("verify") is not None, "data": record.get("data", ""),
            "n_train": record.get("n_train"), "seconds": record.get("seconds"), "winner": winner,
            "metric": first_metric}


def report_rank_view(config: dict) -> dict | None:
    """The ranking that chose this run's backbone (config.yaml's rank section), or None."""
    record = config.get("rank")
    return rank_view(record) if isinstance(record, dict) and record.get("table") else None


def check_rank_out(out: str | Path) -> None:
    """Refuse a folder whose rank.json / rank.html tlearn did not write (a user's files are never overwritten)."""
    folder = Path(out)
    if folder.exists() and not folder.is_dir():
        raise TlearnError(f"--out {folder} is a file; give a folder for rank.json and rank.html.")
    existing = folder / RANK_JSON
    ours = False
    if existing.is_file():
        try:
            ours = json.loads(existing.read_text()).get("format") == FORMAT
        except (ValueError, AttributeError, OSError):
            ours = False
    for name in (RANK_JSON, RANK_HTML):
        if (folder / name).exists() and not ours:
            raise TlearnError(f"{folder / name} exists and was not written by `tlearn rank`; move it away or choose "
                              "another --out (tlearn does not overwrite it).")


def write_rank_outputs(ranking, out: str | Path) -> list[Path]:
    """rank.json (the whole record) and rank.html (the table) in folder out."""
    check_rank_out(out)
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    record = ranking.to_dict()
    atomic_write_text(folder / RANK_JSON, json.dumps(record, indent=2, default=float) + "\n")
    html = render_text(RANK_PAGE, {
        "title": f"tlearn rank: {Path(record['data']).name}", "style": STYLE, "rank": rank_view(record),
        "hint": HINT, "version": __version__, "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    })
    atomic_write_text(folder / RANK_HTML, html)
    return [folder / RANK_JSON, folder / RANK_HTML]
