"""doctor.html (self-contained, the run report's look) and doctor.json, and the summary printed in a terminal."""
from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from jinja2 import DictLoader, Environment, StrictUndefined, select_autoescape

from .._version import __version__
from ..data.images import UnreadableImage
from ..data.leakage import NEAR_BITS, LeakageReport
from ..errors import TlearnError
from ..files import atomic_write_text
from ..report.gallery import thumbnail_uri
from ..report.html import fmt, pct
from ..report.templates import HEAD, STYLE
from .diagnose import DoctorReport
from ..data.duplicates import FEATURE_COSINE
from .labels import OUTLIER_Z

SHOWN = 48  # entries of each gallery on the page (doctor.json lists more)
THUMB_PX = 112
MARKER = "tlearn doctor"  # in both files: an existing file without it is the user's and is not overwritten

EXTRA_STYLE = """
.dup { border: 1px solid var(--line); border-radius: 8px; padding: 8px; margin: 8px 0; }
.dup .gallery { grid-template-columns: repeat(auto-fill, minmax(130px, 1fr)); }
.tag.bad { background: #fee2e2; color: #991b1b; } .tag.ok { background: #dcfce7; color: #166534; }
"""

PAGE = r"""{% macro thumb(t, caption) %}
<figure class="thumb">
  {% if t.uri %}<img src="{{ t.uri }}" alt="{{ t.path }}">{% else %}<div class="missing">image not available: {{ t.reason }}</div>{% endif %}
  <figcaption>{{ caption }}<br><span class="path" title="{{ t.path }}">{{ t.path.split("/")[-2:] | join("/") }}</span></figcaption>
</figure>
{% endmacro %}
""" + HEAD + r"""<body>
<header id="summary"><div class="wrap">
  <h1>{{ title }}</h1>
  <div class="sub">data <code>{{ r.data }}</code> · {{ s.classes }} classes · images {{ counts }} · backbone
    <b>{{ r.backbone.name }}</b> ({{ r.backbone.weights }}, {{ r.backbone.data_config.input_size }} px) · {{ r.settings.val_source }}</div>
  <div class="cards">
    <div class="card"><div class="k">cross-split duplicates</div><div class="v">{{ s.cross_split_duplicate_groups }}</div></div>
    <div class="card"><div class="k">duplicate groups</div><div class="v">{{ s.duplicate_groups }}</div></div>
    <div class="card"><div class="k">label issues</div><div class="v">{{ s.label_issues }}</div></div>
    <div class="card"><div class="k">outliers</div><div class="v">{{ s.outliers }}</div></div>
    <div class="card"><div class="k">unreadable</div><div class="v">{{ s.unreadable }}</div></div>
    <div class="card"><div class="k">train imbalance</div><div class="v">{{ s.imbalance | fmt(1) }}</div></div>
  </div>
</div></header>
<nav><div class="wrap">
  <a href="#duplicates">Duplicates</a><a href="#label-issues">Label issues</a><a href="#outliers">Outliers</a>
  <a href="#classes">Classes</a><a href="#files">Files</a><a href="#skipped">Unreadable files</a><a href="#settings">Settings</a>
</div></nav>
<main class="wrap">

<section id="duplicates">
  <h2>Duplicates</h2>
  <p class="hint">Exact: byte-identical files (or one file listed twice). Near: distinct files of the same picture
    (resized, re-encoded, lightly edited), by {{ near_method }}. A group across splits is leakage: val/test would
    score images the model trained on. Keep one image per group, in one split.</p>
  {% for g in dups %}
  <div class="dup"><b>{{ g.kind }}</b> · {{ g.paths | length }} files
    {% if g.cross_split %}<span class="tag bad">across splits: {{ g.splits | unique | join(", ") }}</span>{% else %}<span class="tag">within {{ g.splits[0] }}</span>{% endif %}
    {% if g.label_conflict %}<span class="tag bad">different labels</span>{% endif %}
    {% if g.get("correlation") is not none and g.kind == "near" %}<span class="muted path">thumbnail correlation {{ g.correlation | fmt(3) }}</span>{% endif %}
    {% if g.get("cosine") is not none and g.kind == "near" %}<span class="muted path">feature cosine {{ g.cosine | fmt(3) }}</span>{% endif %}
    <div class="gallery">{% for t in g.thumbs %}{{ thumb(t, t.split ~ " / " ~ t.label) }}{% endfor %}</div>
  </div>
  {% else %}<p>None found.</p>{% endfor %}
  {% if r.duplicates | length > dups | length %}<p class="hint">{{ r.duplicates | length - dups | length }} more groups in doctor.json.</p>{% endif %}
</section>

<section id="label-issues">
  <h2>Label issues</h2>
  <p class="hint">Images whose label a cross-validated linear probe on the backbone's features doubts: each image scored by a
    probe that never saw it ({{ r.label_model.folds }} folds). Most suspect first, by {{ r.settings.ranking | replace("_", " ") }}
    (score: {% if r.settings.ranking == "self_confidence" %}the probability of the given label{% else %}the given label's probability minus the best other class's{% endif %};
    low = suspect). "No class fits": an image far from every class (see outliers), its score shrunk by how far out it is.
    Check each: relabel, move or remove it, or keep it if the label is right.</p>
  {% if issues %}<div class="gallery">{% for t in issues %}
  {% set cap %}given <span class="true">{{ t.given }}</span> → {% if t.suggested is not none %}<span class="pred">{{ t.suggested }}</span>{% else %}<span class="pred">no class fits</span>{% endif %} · {{ t.score | fmt(3) }} · {{ t.split }}{% endset %}
  {{ thumb(t, cap) }}{% endfor %}</div>
  {% else %}<p>{% if r.label_model.folds %}None found.{% else %}Not computed: every class needs at least 2 readable images.{% endif %}</p>{% endif %}
  {% if r.label_issues | length > issues | length %}<p class="hint">{{ r.label_issues | length - issues | length }} more in doctor.json.</p>{% endif %}
</section>

<section id="outliers">
  <h2>Outliers</h2>
  <p class="hint">Images far from every class in the backbone's feature space: their neighbourhood is much sparser than their
    neighbours' own (local outlier factor, robust z-score above {{ outlier_z }}; the score shown). Not what the folder is
    about, blank, or a rare view worth more examples.</p>
  {% if far %}<div class="gallery">{% for t in far %}
  {% set cap %}{{ t.split }} / {{ t.given }} · z {{ t.score | fmt(1) }}{% endset %}{{ thumb(t, cap) }}{% endfor %}</div>
  {% else %}<p>None found.</p>{% endif %}
</section>

<section id="classes">
  <h2>Classes</h2>
  <p class="hint">Readable images per class and split. Train imbalance (largest / smallest class): {{ r.classes.imbalance | fmt(2) }}.
    {{ r.settings.val_source }}.</p>
  <div class="scroll scroll-y"><table class="data">
    <tr><th class="l">class</th>{% for sp in r.classes.splits %}<th>{{ sp }}</th>{% endfor %}</tr>
    {% for row in r.classes.rows %}<tr><td class="l">{{ row["class"] }}</td>{% for sp in r.classes.splits %}
      <td{% if row[sp] == 0 %} style="background: #fee2e2"{% endif %}>{{ row[sp] }}</td>{% endfor %}</tr>{% endfor %}
  </table></div>
  {% for m in r.classes.missing %}<p><span class="tag bad">missing</span> {{ m["class"] }} has no readable image in {{ m.split }}.</p>{% endfor %}
  {% if r.classes.few %}<p class="hint">Few images (under 5): {% for f in r.classes.few %}{{ f["class"] }} in {{ f.split }} ({{ f.images }}){% if not loop.last %}, {% endif %}{% endfor %}.</p>{% endif %}
</section>

<section id="files">
  <h2>Files</h2>
  <div class="scroll"><table class="data">
    <tr><th class="l">split</th><th>files</th><th class="l">formats</th><th class="l">modes</th><th>short side min / median / max</th><th class="l">commonest sizes</th></tr>
    {% for sp, f in r.files.per_split.items() %}<tr><td class="l">{{ sp }}</td><td>{{ f.files }}</td>
      <td class="l">{% for k, v in f.formats.items() %}{{ k }} {{ v }}{% if not loop.last %}, {% endif %}{% endfor %}</td>
      <td class="l">{% for k, v in f.modes.items() %}{{ k }} {{ v }}{% if not loop.last %}, {% endif %}{% endfor %}</td>
      <td>{% if f.short_side %}{{ f.short_side.min }} / {{ f.short_side.median }} / {{ f.short_side.max }}{% else %}–{% endif %}</td>
      <td class="l">{% for k, v in f.sizes.items() %}{{ k }} ({{ v }}){% if not loop.last %}, {% endif %}{% endfor %}</td></tr>{% endfor %}
  </table></div>
  <h3>Size and shape outliers</h3>
  {% if odd %}<div class="gallery">{% for t in odd %}{{ thumb(t, t.split ~ " · " ~ t.why) }}{% endfor %}</div>
  {% else %}<p>None: sizes and aspect ratios are alike.</p>{% endif %}
</section>

<section id="skipped">
  <h2>Unreadable or skipped files</h2>
  {% if r.skipped %}<p class="hint">{{ r.skipped | length }} file(s) that training would skip: fix or remove them.</p>
  <div class="scroll scroll-y"><table class="data"><tr><th class="l">file</th><th class="l">reason</th></tr>
    {% for sk in r.skipped %}<tr><td class="l">{{ sk.path }}</td><td class="l">{{ sk.reason }}</td></tr>{% endfor %}</table></div>
  {% else %}<p>None: every file was read.</p>{% endif %}
</section>

<section id="settings">
  <h2>Settings</h2>
  <dl class="kv">{% for k, v in settings %}<dt>{{ k }}</dt><dd>{{ v }}</dd>{% endfor %}</dl>
</section>
</main>
<footer class="wrap">Written by {{ marker }} {{ version }} at {{ generated }}. Self-contained: no network needed.</footer>
</body>
</html>
"""


def _env() -> Environment:
    env = Environment(loader=DictLoader({"doctor.html.j2": PAGE}), undefined=StrictUndefined, trim_blocks=True,
                      lstrip_blocks=True, autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters["fmt"] = fmt
    env.filters["pct"] = pct
    return env


def _thumb(item: dict, path: str | None = None) -> dict:
    path = path or item["path"]
    try:
        uri, reason = thumbnail_uri(path, THUMB_PX), None
    except (UnreadableImage, OSError) as exc:
        uri, reason = None, str(exc)
    return {**item, "path": path, "uri": uri, "reason": reason}


def render_page(report: DoctorReport) -> str:

    s = report.summary()
    dups = [{**g, "thumbs": [_thumb({"split": sp, "label": lab}, p)
                             for p, sp, lab in list(zip(g["paths"], g["splits"], g["labels"]))[:8]]}
            for g in report.duplicates[:SHOWN]]
    settings = [("data", report.data), ("backbone", f"{report.backbone['name']} ({report.backbone['weights']})"),
                ("label model", f"linear probe on l2-normalised features, C={fmt(report.label_model.get('C'), 4)}, "
                                f"{report.label_model.get('folds')} folds"),
                ("features", f"{report.label_model.get('from_cache', 0)} from cache, "
                             f"{report.label_model.get('extracted', 0)} extracted"),
                *[(k, str(v)) for k, v in report.settings.items()],
                ("seconds", ", ".join(f"{k} {v:.1f}" for k, v in report.seconds.items()))]
    view = {"title": f"tlearn doctor: {Path(report.data).name}", "style": STYLE + EXTRA_STYLE, "r": report, "s": s,
            "counts": " / ".join(f"{k} {v}" for k, v in report.counts.items() if v), "dups": dups,
            "near_method": f"{LeakageReport().method()}, or backbone features (centred) of cosine similarity >= "
                           f"{FEATURE_COSINE} with hashes within {NEAR_BITS} bits",
            "issues": [_thumb(t) for t in report.label_issues[:SHOWN]],
            "far": [_thumb(t) for t in report.outliers[:SHOWN]],
            "odd": [_thumb(t) for t in report.files["outliers"][:SHOWN]], "settings": settings,
            "outlier_z": OUTLIER_Z, "marker": MARKER, "version": __version__, "generator": f"{MARKER} {__version__}",
            "generated": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    return _env().get_template("doctor.html.j2").render(**view)


def _refuse_foreign(path: Path) -> None:
    if path.is_file():
        try:
            head = path.read_text(errors="replace")[:2000]
        except OSError:
            head = ""
        if MARKER not in head:
            raise TlearnError(f"{path} exists and was not written by tlearn doctor; choose another --out folder "
                              "or move the file.")


def write_doctor(report: DoctorReport, out: str | Path) -> tuple[Path, Path]:
    """OUT/doctor.html and OUT/doctor.json (earlier doctor files there are replaced, nothing else)."""
    out = Path(out)
    html, js = out / "doctor.html", out / "doctor.json"
    for path in (html, js):
        _refuse_foreign(path)
    atomic_write_text(js, json.dumps(report.to_dict(), indent=2) + "\n")
    atomic_write_text(html, render_page(report))
    return html, js


def summary_text(report: DoctorReport, limit: int = 10) -> str:
    """What the terminal shows: the counts, then the first few of each finding."""
    s = report.summary()
    lines = [f"tlearn doctor: {report.data}",
             f"  {s['images']} images in {s['classes']} classes ({', '.join(f'{k} {v}' for k, v in report.counts.items() if v)});"
             f" train imbalance {s['imbalance'] or 0:.2f}; backbone {report.backbone['name']}",
             f"  unreadable {s['unreadable']}, size/shape outliers {s['file_outliers']}, classes missing from a split "
             f"{s['missing_classes']}",
             f"  duplicate groups {s['duplicate_groups']} ({s['cross_split_duplicate_groups']} across splits), "
             f"label issues {s['label_issues']}, outliers {s['outliers']}"]
    for g in report.duplicates[:limit]:
        where = "ACROSS SPLITS" if g["cross_split"] else "within " + g["splits"][0]
        lines.append(f"  duplicate ({g['kind']}, {where}): " + "  |  ".join(
            f"{sp}/{lab}: {p}" for p, sp, lab in zip(g["paths"], g["splits"], g["labels"])))
    for t in report.label_issues[:limit]:
        lines.append(f"  label issue {t['score']:.3f}: {t['path']} ({t['split']}) given {t['given']}, "
                     f"suggested {t['suggested'] or 'none (no class fits)'}")
    for t in report.outliers[:limit]:
        lines.append(f"  outlier z {t['score']:.1f}: {t['path']} ({t['split']}/{t['given']})")
    for sk in report.skipped[:limit]:
        lines.append(f"  unreadable: {sk['path']}: {sk['reason']}")
    return "\n".join(lines)
