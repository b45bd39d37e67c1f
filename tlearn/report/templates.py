"""The report pages' HTML (kept in Python so they ship inside the package without data-file setup).

The <head> and the style every page shares live in tlearn.pages (re-exported here).
"""
from ..pages import HEAD, STYLE

__all__ = ["COMPARE", "HEAD", "REPORT", "STYLE", "TEMPLATES"]


REPORT = r"""{% macro ci(r, key) %}{% set c = (r.get("ci95") or {}).get(key) %}{% if c %}<div class="ci">{{ c[0] | fmt }}–{{ c[1] | fmt }}</div>{% endif %}{% endmacro %}
{% macro cm_table(cm, mode) %}
<div class="scroll">
  <div class="axis">{{ mode }}{% if mode == "row-normalised" %} (% of true class){% endif %}</div>
  <table class="cm{% if large_matrix %} large{% endif %}">
    <tr><th class="row"><span class="axis">true ↓ / predicted →</span></th>
      {% for c in classes %}<th class="col" title="{{ c }}">{{ loop.index0 if large_matrix else c }}</th>{% endfor %}
      {% if mode == "counts" %}<th class="total">total</th>{% endif %}</tr>
    {% for row in cm.cells %}{% set i = loop.index0 %}
    <tr><th class="row" title="{{ classes[i] }}">{% if large_matrix %}{{ i }} · {% endif %}{{ classes[i] }}</th>
      {% for cell in row %}{% if cell.count %}<td style="background: {{ cell.bg }}; color: {{ cell.fg }}"
        title="true {{ classes[i] }} → predicted {{ classes[loop.index0] }}: {{ cell.count }} ({{ cell.rate | pct(1) }}% of {{ classes[i] }})">{{ cell.count if mode == "counts" else (cell.rate | pct) }}</td>{% else %}<td></td>{% endif %}{% endfor %}
      {% if mode == "counts" %}<td class="total">{{ cm.row_totals[i] }}</td>{% endif %}</tr>
    {% endfor %}
  </table>
</div>
{% endmacro %}
""" + HEAD + r"""<body>
{% set s = summary %}
<header id="summary"><div class="wrap">
  <h1>{{ title }}</h1>
  <div class="sub">{{ s.task }} · backbone <b>{{ s.backbone }}</b> ({{ s.weights }}{% if s.input_size %}, {{ s.input_size }} px{% endif %})
    · strategy <b>{{ s.strategy }}</b> · images {{ s.counts }} · trained in {{ s.train_time }} on {{ s.device }}
    · model {{ s.model_size }}{% if s.params %} ({{ s.params | fmt }} parameters){% endif %}</div>
  <div class="sub">data <code>{{ s.data }}</code> · run <code>{{ run_path }}</code> · created {{ s.created }}</div>
  {% if s.headline %}{% set h = s.headline %}
  <div class="cards">
    <div class="card"><div class="k">{{ h.split }} accuracy</div><div class="v">{{ h.accuracy | fmt }}</div>{{ ci(h, "accuracy") }}</div>
    <div class="card"><div class="k">balanced accuracy</div><div class="v">{{ h.balanced_accuracy | fmt }}</div>{{ ci(h, "balanced_accuracy") }}</div>
    <div class="card"><div class="k">macro F1</div><div class="v">{{ h.macro_f1 | fmt }}</div></div>
    {% if h.auroc is defined %}<div class="card"><div class="k">AUROC</div><div class="v">{{ h.auroc | fmt }}</div>{{ ci(h, "auroc") }}</div>{% endif %}
    <div class="card"><div class="k">ECE</div><div class="v">{{ h.ece | fmt }}</div></div>
    <div class="card"><div class="k">images</div><div class="v">{{ h.n | fmt }}</div></div>
  </div>
  {% endif %}
</div></header>
<nav><div class="wrap">
  <a href="#metrics">Metrics</a><a href="#per-class">{% if multilabel %}Per label{% else %}Per class{% endif %}</a><a href="#confusion">Confusion matrix</a>
  <a href="#calibration">Calibration</a>{% if binary %}<a href="#roc">ROC &amp; sensitivity</a>{% endif %}
  <a href="#errors">Confidently wrong</a>{% if heatmaps %}<a href="#heatmaps">Where the model looks</a>{% endif %}<a href="#curves">Learning curves</a>{% if search %}<a href="#search">Search</a>{% endif %}{% if ranking %}<a href="#ranking">Source ranking</a>{% endif %}{% if distillation %}<a href="#distillation">Distillation</a>{% endif %}<a href="#skipped">Skipped files</a>
  <a href="#config">Config</a>
</div></nav>
<main class="wrap">
{% if problems %}
<section class="problems" id="problems"><h2>Problems reading this run</h2>
  <ul>{% for p in problems %}<li>{{ p }}</li>{% endfor %}</ul></section>
{% endif %}

{% if findings %}
<section class="problems" id="findings"><h2>What tlearn found about the data</h2>
  <ul>{% for f in findings %}<li>{{ f }}</li>{% endfor %}</ul></section>
{% endif %}

<section id="metrics">
  <h2>Metrics per split</h2>
  <p class="hint">val chooses the model; test is never used for choosing anything. Log loss and ECE: lower is better.
    {% if ci_note %}Below each value: its {{ ci_note }}.{% endif %}</p>
  <div class="scroll"><table class="data">
    <tr><th class="l">split</th><th>images</th><th>accuracy</th><th>balanced accuracy</th><th>macro F1</th>
      <th>log loss</th><th>ECE</th>{% if auroc_key %}<th>{{ "AUROC" if auroc_key == "auroc" else "macro AUROC" }}</th>{% endif %}<th class="l">source</th></tr>
    {% for r in metric_rows %}
    <tr><td class="l"><b>{{ r.split }}</b>{% if r.get('note') %} <span class="tag">{{ r.note }}</span>{% endif %}</td>
      <td>{{ r.n | fmt }}</td><td>{{ r.get("accuracy") | fmt }}{{ ci(r, "accuracy") }}</td>
      <td>{{ r.get("balanced_accuracy") | fmt }}{{ ci(r, "balanced_accuracy") }}</td>
      <td>{{ r.get("macro_f1") | fmt }}</td><td>{{ r.get("loss") | fmt }}</td><td>{{ r.get("ece") | fmt }}</td>
      {% if auroc_key %}<td>{{ r.get(auroc_key) | fmt }}{{ ci(r, auroc_key) }}</td>{% endif %}<td class="l muted">{{ r.source }}</td></tr>
    {% else %}<tr><td class="l" colspan="9">No metrics: the run has no metrics.json and no predictions.</td></tr>
    {% endfor %}
  </table></div>
  {% if unlabelled %}<p class="hint">Saved predictions without labels (not scored): {{ unlabelled | join(", ") }}.</p>{% endif %}
</section>

{% if distillation %}{% set d = distillation %}
<section id="distillation">
  <h2>Distillation</h2>
  <p class="hint">Recipe {{ d.recipe }}. The student alone is the same student (architecture, initial weights,
    epochs, augmentation) trained on the same labelled data without the teacher (RUN/student-alone); one seed
    moves these figures by a point or two, so compare over several (benchmarks/distill_gain.py).</p>
  <div class="scroll"><table class="data">
    <tr><th class="l">split</th><th>teacher</th><th>distilled student</th><th>student alone</th><th>gain (points)</th></tr>
    {% for r in d.rows %}<tr><td class="l"><b>{{ r.split }}</b></td><td>{{ r.teacher | fmt }}</td>
      <td>{{ r.distilled | fmt }}</td><td>{{ r.alone | fmt }}</td>
      <td>{% if r.gain is not none %}{{ "%+.1f" | format(r.gain) }}{% else %}–{% endif %}</td></tr>{% endfor %}
  </table></div>
  <p class="hint">CPU fp32, batch 1: teacher {{ d.teacher_ms_batch1 | fmt }} ms per image at {{ d.teacher_input_size }} px,
    student {{ d.student_ms_batch1 | fmt }} ms at {{ d.student_input_size }} px ({{ d.speedup_batch1 | fmt }}x faster).
    {% if d.unlabeled_images %}{{ d.unlabeled_images }} unlabeled images taught through the teacher. {% endif %}
    {% if d.views %}The teacher judged {{ d.views.views }} stored view(s) of each image once ({{ d.views.precision }}){% if d.views.mix %};
    mixed stored labels agree with its own output on the mixed view on {{ (100 * d.views.mix.top1_agreement) | round(1) }}% of
    {{ d.views.mix.pairs }} pairs (mean total variation {{ d.views.mix.mean_tv | fmt }}){% endif %}. {% endif %}
    {% if d.budget_minutes %}Schedule planned for a {{ d.budget_minutes | round(1) }}-minute budget. {% endif %}
    {% if d.seconds %}Time: {% for k, v in d.seconds.items() %}{{ k }} {{ v }}{% if not loop.last %}, {% endif %}{% endfor %}.{% endif %}</p>
</section>
{% endif %}

{% if multilabel %}
<section id="per-class">
  <h2>Per label</h2>
  <p class="hint">A multi-label run: each label is its own yes/no decision with its own sigmoid probability.
    AUROC and AP (average precision) need no threshold; AUROC's bootstrap 95% interval (over patients when the
    data has groups) is under it, where metrics.json has one; sensitivity and specificity are at each label's threshold,
    chosen on {{ multilabel.threshold_source }} and applied unchanged to the other splits{% if multilabel.val_optimistic %}
    (on val itself they are optimistic){% endif %}. Positives: images with the label. Accuracy above is the subset
    accuracy (every label of an image right); Hamming loss is the fraction of image-label decisions wrong.</p>
  <div class="scroll"><table class="data">
    <tr><th class="l">split</th><th>macro AUROC</th><th>micro AUROC</th><th>macro AP</th><th>micro AP</th>
      <th>subset accuracy</th><th>Hamming loss</th><th>labels per image</th></tr>
    {% for r in multilabel.summary %}<tr><td class="l"><b>{{ r.split }}</b></td><td>{{ r.macro_auroc | fmt }}{% if r.ci95 is defined and r.ci95.macro_auroc is defined %}<br><span class="muted">[{{ r.ci95.macro_auroc[0] | fmt }}, {{ r.ci95.macro_auroc[1] | fmt }}]</span>{% endif %}</td>
      <td>{{ r.micro_auroc | fmt }}</td><td>{{ r.macro_average_precision | fmt }}</td><td>{{ r.micro_average_precision | fmt }}</td>
      <td>{{ r.subset_accuracy | fmt }}</td><td>{{ r.hamming_loss | fmt }}</td><td>{{ r.labels_per_image | fmt(2) }}</td></tr>{% endfor %}
  </table></div>
  <div class="scroll scroll-y"><table class="data">
    <tr class="group"><th class="l"></th><th></th>{% for sp in multilabel.splits %}<th colspan="5">{{ sp }}</th>{% endfor %}</tr>
    <tr><th class="l">label</th><th>threshold</th>{% for sp in multilabel.splits %}<th>AUROC</th><th>AP</th><th>sensitivity</th><th>specificity</th><th>positives</th>{% endfor %}</tr>
    {% for row in multilabel.rows %}
    <tr><td class="l">{{ row.label }}</td><td>{{ row.threshold | fmt }}</td>
      {% for c in row.cells %}<td style="background: {{ c.bg }}">{{ c.auroc | fmt }}{% if c.auroc_ci95 is defined and c.auroc_ci95 %}<br><span class="muted">[{{ c.auroc_ci95[0] | fmt }}, {{ c.auroc_ci95[1] | fmt }}]</span>{% endif %}</td><td>{{ c.average_precision | fmt }}</td>
      <td>{{ c.sensitivity | fmt }}</td><td>{{ c.specificity | fmt }}</td><td>{{ c.positives }}{% if c.n %} <span class="muted">({{ c.prevalence | pct(1) }}%)</span>{% endif %}</td>{% endfor %}</tr>
    {% endfor %}
  </table></div>
</section>
{% else %}
<section id="per-class">
  <h2>Per class</h2>
  <p class="hint">Precision: of the images predicted as the class, the fraction that are. Recall: of the images of the
    class, the fraction found. F1 is shaded from red (0) to green (1). Support: images of the class.</p>
  {% if per_class %}
  <div class="scroll scroll-y"><table class="data">
    <tr class="group"><th class="l"></th>{% for sp in per_class.splits %}<th colspan="4">{{ sp }}</th>{% endfor %}</tr>
    <tr><th class="l">class</th>{% for sp in per_class.splits %}<th>precision</th><th>recall</th><th>F1</th><th>support</th>{% endfor %}</tr>
    {% for row in per_class.rows %}
    <tr><td class="l">{% if large_matrix %}<span class="muted">{{ row.index }}</span> {% endif %}{{ row.class }}</td>
      {% for c in row.cells %}<td>{{ c.precision | fmt }}</td><td>{{ c.recall | fmt }}</td>
      <td style="background: {{ c.f1_bg }}">{{ c.f1 | fmt }}</td><td>{{ c.support | fmt }}</td>{% endfor %}</tr>
    {% endfor %}
  </table></div>
  {% else %}<p>{{ no_predictions }}</p>{% endif %}
</section>
{% endif %}

<section id="confusion">
  <h2>Confusion matrix</h2>
  <p class="hint">Rows: true class; columns: predicted class. Blue: correct (the diagonal), red: mistakes; shade = share of
    the true class (row-normalised). Hover a cell for its numbers.{% if large_matrix %} Columns are numbered as the rows.{% endif %}</p>
  {% for cm in confusion %}
  {% if cm.split != main_split %}<details><summary>{{ cm.split }} ({{ cm.n }} images)</summary>{% else %}<h3>{{ cm.split }} ({{ cm.n }} images)</h3>{% endif %}
  {% if large_matrix %}
  {{ cm_table(cm, "counts") }}
  <details><summary>row-normalised (% of true class)</summary>{{ cm_table(cm, "row-normalised") }}</details>
  {% else %}
  <div class="cm-pair">{{ cm_table(cm, "counts") }}{{ cm_table(cm, "row-normalised") }}</div>
  {% endif %}
  {% if cm.confused %}
  <h3>Most frequent mistakes ({{ cm.split }})</h3>
  <table class="data"><tr><th class="l">true class</th><th class="l">predicted as</th><th>images</th><th>% of true class</th></tr>
    {% for m in cm.confused %}<tr><td class="l">{{ m.true }}</td><td class="l">{{ m.predicted }}</td><td>{{ m.count }}</td><td>{{ m.rate | pct(1) }}</td></tr>{% endfor %}
  </table>
  {% endif %}
  {% if cm.split != main_split %}</details>{% endif %}
  {% else %}<p>{{ no_predictions }}</p>
  {% endfor %}
</section>

<section id="calibration">
  <h2>Calibration</h2>
  <p class="hint">Reliability diagram: when the model says 90 %, is it right 90 % of the time? Bars below the diagonal
    mean over-confidence. ECE (expected calibration error) is the bar-size-weighted mean gap; 15 equal-width bins.</p>
  {% if calibration %}<img class="plot" alt="reliability diagram" src="{{ calibration.plot }}">
  {% else %}<p>{{ no_predictions }}</p>{% endif %}
</section>

{% if binary %}
<section id="roc">
  <h2>ROC, precision-recall, sensitivity and specificity</h2>
  <p class="hint">Positive class: <b>{{ binary.positive }}</b> (negative: {{ binary.negative }}). Dots mark the model's
    decision (argmax, p ≥ 0.5). Sensitivity = positives found; specificity = negatives cleared; PPV/NPV: how often a
    positive/negative call is right.{% if binary.chosen is not none %} The second threshold is chosen on val (max
    sensitivity + specificity) and then applied unchanged to the other splits; on val itself it is optimistic.{% endif %}</p>
  <img class="plot" alt="ROC and precision-recall curves" src="{{ binary.plot }}">
  <div class="scroll"><table class="data">
    <tr><th class="l">split</th><th class="l">threshold</th><th>sensitivity</th><th>specificity</th><th>PPV</th><th>NPV</th>
      <th>TP</th><th>FN</th><th>TN</th><th>FP</th></tr>
    {% for r in binary.rows %}
    <tr><td class="l"><b>{{ r.split }}</b>{% if r.optimistic %} <span class="tag">chosen here: optimistic</span>{% endif %}</td>
      <td class="l">{{ r.rule }}</td><td><b>{{ r.sensitivity | fmt }}</b></td><td><b>{{ r.specificity | fmt }}</b></td>
      <td>{{ r.ppv | fmt }}</td><td>{{ r.npv | fmt }}</td><td>{{ r.tp }}</td><td>{{ r.fn }}</td><td>{{ r.tn }}</td><td>{{ r.fp }}</td></tr>
    {% endfor %}
  </table></div>
</section>
{% endif %}

<section id="errors">
  <h2>Most confidently wrong</h2>
  <p class="hint">The mistakes the model was surest about, most confident first: label noise, ambiguous images, or what
    the model has not learned. Up to {{ gallery_limit }} per split.</p>
  {% for split, items in gallery.items() %}
  <h3>{{ split }}: {{ errors[split] }} wrong of {{ run.predictions[split].labelled | length }}</h3>
  {% if items %}
  <div class="gallery">
    {% for it in items %}
    <figure class="thumb">
      {% if it.thumbnail %}<img src="{{ it.thumbnail }}" alt="{{ it.path }}">
      {% else %}<div class="missing">image not available: {{ it.missing_reason }}</div>{% endif %}
      <figcaption>true <span class="true">{{ it.true }}</span><br>predicted <span class="pred">{{ it.predicted }}</span>
        {{ it.probability | fmt(2) }}<br><span class="path" title="{{ it.path }}">{{ it.path.split("/")[-1] }}</span></figcaption>
    </figure>
    {% endfor %}
  </div>
  {% else %}<p>No mistakes on {{ split }}.</p>{% endif %}
  {% else %}<p>{{ no_predictions }}</p>
  {% endfor %}
</section>

{% if heatmaps %}{% set hm = heatmaps %}
<section id="heatmaps">
  <h2>Where the model looks</h2>
  <p class="hint">Class-activation heatmaps ({{ hm.method }}{% if hm.layer %} on layer <code>{{ hm.layer }}</code>{% endif %})
    over the eval crop the model saw: red regions raise the named class's score most. Shown for the most confidently
    wrong images (the predicted and the true class) and the most confident correct ones per class; up to
    {{ hm.limit }} images{% if hm.seconds %}, drawn in {{ hm.seconds | fmt(1) }} s{% endif %}. A map shows where the evidence is,
    not that it is the right evidence. More: <code>tlearn explain RUN IMAGES --out DIR</code>.</p>
  {% for note in hm.notes %}<p class="hint">{{ note }}</p>{% endfor %}
  {% for title, cards in [("Confidently wrong", hm.wrong), ("Correct, most confident per class", hm.correct)] %}
  {% if cards %}
  <h3>{{ title }}</h3>
  <div class="hm-grid">
    {% for c in cards %}
    <figure class="hm-card">
      <div class="hm-row"><img src="{{ c.image }}" alt="{{ c.pick.path }}" title="the eval crop">
        {% for caption, uri in c.maps %}<img src="{{ uri }}" alt="heatmap: {{ caption }}" title="{{ caption }}">{% endfor %}</div>
      <figcaption>{{ c.pick.split }} · true <span class="true">{{ c.true }}</span>{% if not c.pick.correct %} · predicted
        <span class="pred">{{ c.predicted }}</span>{% endif %} {{ c.pick.probability | fmt(2) }}<br>
        <span class="muted">maps: {% for caption, uri in c.maps %}{{ caption }}{% if not loop.last %}, {% endif %}{% endfor %}</span><br>
        <span class="path" title="{{ c.pick.path }}">{{ c.pick.path.split("/")[-1] }}</span></figcaption>
    </figure>
    {% endfor %}
  </div>
  {% endif %}
  {% endfor %}
</section>
{% endif %}

<section id="curves">
  <h2>Learning curves</h2>
  {% if curves_plot %}<img class="plot" alt="learning curves" src="{{ curves_plot }}">
  {% else %}<p class="hint">{% if history %}A single training step (e.g. a linear probe fitted in closed form): no curve
    to draw; the values are below.{% else %}No history.csv in this run.{% endif %}</p>{% endif %}
  {% if history %}
  <details{% if not curves_plot %} open{% endif %}><summary>history.csv ({{ history | length }} rows)</summary>
  <div class="scroll scroll-y"><table class="data">
    <tr>{% for k in history_keys %}<th>{{ k }}</th>{% endfor %}</tr>
    {% for row in history %}<tr>{% for k in history_keys %}<td>{{ row.get(k) | fmt(4) }}</td>{% endfor %}</tr>{% endfor %}
  </table></div></details>
  {% endif %}
</section>

{% if search %}
<section id="search">
  <h2>Search</h2>
  <p class="hint">--strategy auto tried these candidates, judged on val only (test was not computed for any of
    them); the winner, <b>{{ search.winner }}</b>, is this run. Budget {{ search.budget_minutes | fmt(1) }} min,
    search {{ search.search_seconds | fmt(0) }} s{% if search.sessions and search.sessions > 1 %} over {{ search.sessions }} sessions{% endif %}.
    {% if search.selection %}Chosen by the one-standard-error rule: {{ search.selection }}.{% endif %}</p>
  <div class="scroll"><table class="data">
    <tr><th class="l">candidate</th><th class="l">settings</th><th>val accuracy</th><th>seconds</th><th>epochs</th>
      <th class="l">status</th><th class="l">why it stopped</th><th class="l">rules</th></tr>
    {% for r in search.rows %}<tr><td class="l">{% if r.winner %}<b>{{ r.name }}</b>{% else %}{{ r.name }}{% endif %}</td>
      <td class="l"><code>{{ r.options }}</code></td><td>{{ r.val_accuracy | fmt(4) }}</td><td>{{ r.seconds | fmt(1) }}</td>
      <td>{{ r.epochs }}</td><td class="l">{{ r.status }}</td><td class="l">{{ r.why }}</td><td class="l muted">{{ r.reasons }}</td></tr>{% endfor %}
  </table></div>
  {% if search.rules %}<h3>Rules</h3>
  <table class="data"><tr><th class="l">rule</th><th class="l">fired</th><th class="l">fact</th><th class="l">effect</th></tr>
    {% for r in search.rules %}<tr><td class="l">{{ r.rule }}</td><td class="l">{{ "yes" if r.fired else "no" }}</td>
      <td class="l">{{ r.fact }}</td><td class="l">{{ r.effect }}</td></tr>{% endfor %}</table>{% endif %}
</section>
{% endif %}

{% if ranking %}
<section id="ranking">
  <h2>Source ranking</h2>
  <p class="hint">--backbone auto scored these sources on the train split by {{ ranking.metric }} (one forward pass
    each; higher is better) and fitted from the best, <b>{{ ranking.winner }}</b>. Scores compare only within a metric.</p>
  <div class="scroll">{{ ranking.table | safe }}</div>
</section>
{% endif %}

<section id="skipped">
  <h2>Skipped files</h2>
  {% if skipped %}
  <p class="hint">{{ skipped | length }} file(s) were not used: fix or remove them.</p>
  <div class="scroll scroll-y"><table class="data">
    <tr><th class="l">file</th><th class="l">reason</th></tr>
    {% for sk in skipped %}<tr><td class="l">{{ sk.path }}</td><td class="l">{{ sk.reason }}</td></tr>{% endfor %}
  </table></div>
  {% else %}<p>None: every file was read.</p>{% endif %}
</section>

<section id="config">
  <h2>Config</h2>
  <dl class="kv">{% for k, v in config_items %}<dt>{{ k }}</dt><dd>{{ v }}</dd>{% endfor %}</dl>
  <details><summary>config.yaml (repeat this run from it)</summary><pre>{{ config_text }}</pre></details>
</section>
</main>
<footer class="wrap">Written by tlearn {{ version }} at {{ generated }}. Self-contained: no network needed.</footer>
</body>
</html>
"""

COMPARE = HEAD + r"""<body>
<header><div class="wrap"><h1>{{ title }}</h1>
  <div class="sub">{% if best %}Each metric's best value is in bold (highest; lowest for log loss and ECE).{% else %}Runs side by side.{% endif %}</div></div></header>
<main class="wrap">
{% if warnings %}<section class="problems"><ul>{% for w in warnings %}<li>{{ w }}</li>{% endfor %}</ul></section>{% endif %}
<section id="compare">
  <h2>Runs side by side</h2>
  <p class="hint">One column per run. Metrics of a split are comparable only between runs on the same data.</p>
  <div class="scroll"><table class="data compare">
    <tr><th class="l"></th>{% for r in rows %}<th>{% if r.report_link %}<a href="{{ r.report_link }}">{{ r.run }}</a>{% else %}{{ r.run }}{% endif %}</th>{% endfor %}</tr>
    <tr><td class="l muted">data</td>{% for r in rows %}<td>{{ r.data }}</td>{% endfor %}</tr>
    <tr><td class="l muted">classes</td>{% for r in rows %}<td>{{ r.classes }}</td>{% endfor %}</tr>
    <tr><td class="l muted">images train / val / test</td>{% for r in rows %}<td>{{ r.counts.get("train", "–") }} / {{ r.counts.get("val", "–") }} / {{ r.counts.get("test", "–") }}</td>{% endfor %}</tr>
    <tr><td class="l muted">backbone</td>{% for r in rows %}<td>{{ r.backbone }} ({{ r.weights }})</td>{% endfor %}</tr>
    <tr><td class="l muted">strategy</td>{% for r in rows %}<td>{{ r.strategy }}</td>{% endfor %}</tr>
    {% for key, short, long, higher in cols %}
    <tr><td class="l">{{ long }}</td>{% for r in rows %}<td>{% if key in best and r[key] == best[key] %}<b>{{ r[key] | fmt }}</b>{% else %}{{ r[key] | fmt }}{% endif %}</td>{% endfor %}</tr>
    {% endfor %}
    <tr><td class="l muted">train time (s)</td>{% for r in rows %}<td>{{ r.train_seconds | fmt(1) }}</td>{% endfor %}</tr>
    <tr><td class="l muted">model size (MB)</td>{% for r in rows %}<td>{{ (r.model_bytes / 1e6) | fmt(1) if r.model_bytes else "–" }}</td>{% endfor %}</tr>
    <tr><td class="l muted">parameters</td>{% for r in rows %}<td>{{ r.params | fmt }}</td>{% endfor %}</tr>
  </table></div>
  <details><summary>run directories</summary><ul>{% for r in rows %}<li><code>{{ r.path }}</code></li>{% endfor %}</ul></details>
</section>
</main>
<footer class="wrap">Written by tlearn {{ version }} at {{ generated }}.</footer>
</body>
</html>
"""

TEMPLATES = {"report.html.j2": REPORT, "compare.html.j2": COMPARE}
