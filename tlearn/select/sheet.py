"""to_label.html: the contact sheet of a selection, self-contained (thumbnails as data: URIs), every name escaped."""
from __future__ import annotations

from ..data.images import UnreadableImage
from ..report.gallery import thumbnail_uri
from ..report.html import render_text
from ..report.templates import HEAD, STYLE

THUMB_PX = 160
SHOWN = 500  # thumbnails on the page; to_label.csv lists every pick

PAGE = HEAD + r"""<body>
<header><div class="wrap">
  <h1>{{ title }}</h1>
  <div class="sub">pool <code>{{ s.pool }}</code>{% if s.labeled %}; labelled <code>{{ s.labeled }}</code>{% endif %}</div>
  <div class="cards">
    <div class="card"><div class="k">picked</div><div class="v">{{ s.picked }}</div></div>
    <div class="card"><div class="k">method</div><div class="v">{{ s.method }}</div></div>
    <div class="card"><div class="k">pool images</div><div class="v">{{ s.pool_images | fmt }}</div></div>
    <div class="card"><div class="k">copies left out</div><div class="v">{{ s.copies_left_out }}</div></div>
    <div class="card"><div class="k">unreadable</div><div class="v">{{ s.skipped | length }}</div></div>
    <div class="card"><div class="k">seconds</div><div class="v">{{ s.seconds.total | fmt(1) }}</div></div>
  </div>
</div></header>
<main class="wrap">
<section id="picks">
  <h2>Label these, in this order</h2>
  <p class="hint">Fill in the <code>label</code> column of to_label.csv beside this page; the filled file is a manifest
  <code>tlearn fit</code> reads (rows left empty are not used).{% if s.probe %} The probe was fitted on
  {{ s.probe.labelled_images }} labelled images ({{ s.probe.settings_from }}).{% endif %}</p>
  <div class="gallery">
  {% for p in picks %}
  <figure class="thumb" data-rank="{{ p.rank }}">
    {% if p.uri %}<img src="{{ p.uri }}" alt="{{ p.path }}">{% else %}<div class="missing">image not available: {{ p.reason }}</div>{% endif %}
    <figcaption><b>#{{ p.rank }}</b>{% if p.predicted %} · probe: {{ p.predicted }}{% endif %}<br>{{ p.why }}<br>
    <span class="path" title="{{ p.path }}">{{ p.path.split("/")[-2:] | join("/") }}</span></figcaption>
  </figure>
  {% endfor %}
  </div>
  {% if more %}<p class="hint">{{ more }} more in to_label.csv.</p>{% endif %}
</section>
{% if s.skipped %}
<section id="skipped" class="problems">
  <h2>Not picked: files that could not be read</h2>
  <table class="data"><tr><th class="l">file</th><th class="l">reason</th></tr>
  {% for f in s.skipped %}<tr><td class="l">{{ f.path }}</td><td class="l">{{ f.reason }}</td></tr>{% endfor %}
  </table>
</section>
{% endif %}
</main>
<footer class="wrap">tlearn select {{ s.version }} · backbone {{ s.backbone.name }} · seed {{ s.seed }}</footer>
</body></html>
"""


def _thumb(path: str) -> tuple[str | None, str | None]:
    try:
        return thumbnail_uri(path, THUMB_PX), None
    except (UnreadableImage, OSError) as exc:
        return None, str(exc)


def render_sheet(rows: list[dict], summary: dict) -> str:
    shown = []
    for row in rows[:SHOWN]:
        uri, reason = _thumb(row["path"])
        shown.append({**row, "uri": uri, "reason": reason, "predicted": row.get("predicted")})
    return render_text(PAGE, {"title": f"tlearn select: {summary['picked']} images to label", "style": STYLE,
                              "generator": "tlearn select", "s": summary, "picks": shown,
                              "more": max(0, len(rows) - SHOWN)})
