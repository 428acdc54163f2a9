"""``report.html``: one self-contained page (charts as embedded PNG, no scripts, no network) per run.

Sections, in order (their ``id`` attributes are listed in ``SECTIONS``): summary, 2-D projection of the
customers coloured by segment, segment sizes, heat map of numeric lifts, k-selection curves, distinctive
terms, segment profiles with masked examples, the strategy table, agreement with ground-truth labels
when there are any, and data quality (rows read / used / rejected, filled values, scrubbing).
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Sequence

import numpy as np

from segmentation.describe import SegmentDescription, feature_label
from segmentation.playbook import FIELDS, Strategy
from segmentation.selection import KSelection

SECTIONS = ("summary", "projection", "sizes", "lifts", "k-selection", "terms", "segments", "strategies",
            "evaluation", "data-quality")

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222;padding:0 1rem}
h1{margin-bottom:.2rem}h2{border-bottom:2px solid #eee;padding-bottom:.3rem;margin-top:2.2rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
th,td{border:1px solid #ddd;padding:.3rem .5rem;text-align:left;vertical-align:top}
th{background:#f6f6f6}td.num{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(480px,1fr));gap:1rem}
.card{border:1px solid #ddd;border-radius:8px;padding:.8rem 1rem}.card h3{margin:.2rem 0 .5rem}
.muted{color:#666;font-size:.85rem}.swatch{display:inline-block;width:.8rem;height:.8rem;border-radius:2px;margin-right:.4rem}
img{max-width:100%}nav a{margin-right:.8rem}.kpi{display:inline-block;margin-right:2rem}.kpi b{font-size:1.4rem;display:block}
"""


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return f'<img alt="chart" src="data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}">'


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _hex(color) -> str:
    return "#" + "".join(f"{int(round(c * 255)):02x}" for c in color[:3])


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def projection_chart(features: np.ndarray | None, labels: np.ndarray | None, descriptions: list[SegmentDescription],
                     max_points: int, random_state: int = 0) -> str:
    if features is None or labels is None or len(features) < 3:
        return "<p class='muted'>No clustering features kept for this run (pipeline keep_features=False).</p>"
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(random_state)
    rows = np.arange(len(features))
    if len(features) > max_points:
        rows = np.sort(rng.choice(len(features), max_points, replace=False))
    points = PCA(n_components=2, random_state=random_state).fit_transform(np.asarray(features[rows], dtype=np.float64))
    fig = _figure(8, 5.5)
    ax = fig.add_subplot()
    colors = _colors(len(descriptions))
    for color, d in zip(colors, descriptions):
        mask = labels[rows] == d.segment
        ax.scatter(points[mask, 0], points[mask, 1], s=6, alpha=0.6, color=color, label=f"{d.segment}: {d.name}"[:60])
    ax.set_xlabel("principal component 1")
    ax.set_ylabel("principal component 2")
    ax.legend(fontsize=7, markerscale=3, loc="best", framealpha=0.8)
    ax.set_title(f"Customers in the clustering space (PCA, {len(rows)} of {len(features)} shown)", fontsize=10)
    return _png(fig)


def sizes_chart(descriptions: list[SegmentDescription]) -> str:
    fig = _figure(8, 0.45 * len(descriptions) + 1)
    ax = fig.add_subplot()
    order = sorted(descriptions, key=lambda d: d.size)
    colors = dict(zip([d.segment for d in descriptions], _colors(len(descriptions))))
    ax.barh([f"{d.segment}: {d.name}"[:55] for d in order], [d.size for d in order],
            color=[colors[d.segment] for d in order])
    for i, d in enumerate(order):
        ax.text(d.size, i, f" {d.size} ({d.share:.0%})", va="center", fontsize=8)
    ax.set_xlabel("customers")
    ax.margins(x=0.15)
    return _png(fig)


def lift_chart(descriptions: list[SegmentDescription], labels: dict[str, str]) -> str:
    features = [s.feature for s in descriptions[0].numeric] if descriptions else []
    if not features:
        return "<p class='muted'>No numeric columns in the schema.</p>"
    features = sorted(features)
    lifts = np.full((len(features), len(descriptions)), np.nan)
    for j, d in enumerate(descriptions):
        for i, feature in enumerate(features):
            signal = d.numeric_signal(feature)
            if signal is not None and signal.lift is not None and signal.lift > 0:
                lifts[i, j] = signal.lift
    fig = _figure(1.1 * len(descriptions) + 3, 0.35 * len(features) + 1.5)
    ax = fig.add_subplot()
    image = ax.imshow(np.log2(lifts), cmap="RdBu_r", vmin=-2, vmax=2, aspect="auto")
    for i in range(len(features)):
        for j in range(len(descriptions)):
            if np.isfinite(lifts[i, j]):
                dark = abs(np.log2(lifts[i, j])) > 1.2  # white on the saturated ends of the colour map
                ax.text(j, i, f"{lifts[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if dark else "black")
    ax.set_yticks(range(len(features)), [feature_label(f, labels) for f in features], fontsize=8)
    ax.set_xticks(range(len(descriptions)), [str(d.segment) for d in descriptions], fontsize=8)
    ax.set_xlabel("segment")
    fig.colorbar(image, ax=ax, label="log2 lift (segment mean / population mean)")
    return _png(fig)


def k_selection_chart(selection: KSelection | None) -> str:
    if selection is None:
        return ""
    panels = [("silhouette (higher is better)", selection.silhouette),
              ("stability: mean ARI between bootstrap fits", selection.stability)]
    if any(b is not None for b in selection.bic):
        bic_title = "BIC (lower is better)" if selection.method == "gmm" else "BIC, spherical-Gaussian K-Means"
        panels.append((bic_title, selection.bic))
    fig = _figure(4 * len(panels), 3.2)
    for i, (title, values) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), i + 1)
        ax.plot(selection.k_values, [np.nan if v is None else v for v in values], marker="o")
        ax.axvline(selection.chosen_k, color="crimson", linestyle="--", linewidth=1)
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("k")
        ax.set_xticks(selection.k_values)
    fig.tight_layout()
    return _png(fig)


def _table(header: Sequence[str], rows: list[Sequence], numeric: Sequence[int] = ()) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td class='num'>{_esc(c)}</td>" if j in numeric else f"<td>{_esc(c)}</td>"
                                    for j, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _segment_card(d: SegmentDescription, color, labels: dict[str, str], n_numeric: int = 6) -> str:
    numeric_rows = [(feature_label(s.feature, labels), f"{s.segment_mean:.4g}", f"{s.population_mean:.4g}",
                     "" if s.lift is None else f"{s.lift:.2f}×", f"{s.std_diff:+.2f}") for s in d.numeric[:n_numeric]]
    category_rows = [(f"{feature_label(c.feature, labels)} = {c.value}", c.count, f"{c.segment_share:.0%}",
                      f"{c.population_share:.0%}", f"{c.lift:.2f}×") for c in d.categories[:6]]
    parts = [f"<div class='card'><h3><span class='swatch' style='background:{_hex(color)}'></span>"
             f"{d.segment}: {_esc(d.name)}</h3><p class='muted'>{d.size} customers, {d.share:.1%} of the base</p>"]
    if numeric_rows:
        parts.append(_table(["feature", "segment mean", "overall", "lift", "std. diff"], numeric_rows, (1, 2, 3, 4)))
    if category_rows:
        parts.append(_table(["over-represented", "count", "in segment", "overall", "lift"], category_rows, (1, 2, 3, 4)))
    if d.examples:
        parts.append(_table(["typical customer (masked id)", "text"], [(e.id, e.text) for e in d.examples]))
    parts.append("</div>")
    return "".join(parts)


def render_report(*, title: str, descriptions: list[SegmentDescription], strategies: list[Strategy],
                  selection: KSelection | None, features: np.ndarray | None, labels: np.ndarray | None,
                  load_summary: dict, run_info: dict, evaluation: dict | None, contingency=None,
                  scrub_report: dict | None = None, feature_labels: dict[str, str] | None = None,
                  max_points: int = 5000, random_state: int = 0) -> str:
    """The report page as a string of HTML."""
    feature_labels = feature_labels or {}
    descriptions = sorted(descriptions, key=lambda d: d.segment)
    colors = _colors(len(descriptions))
    nav = "".join(f"<a href='#{s}'>{s.replace('-', ' ')}</a>" for s in SECTIONS)
    out = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_esc(title)}</title>"
           f"<style>{CSS}</style></head><body><h1>{_esc(title)}</h1><nav>{nav}</nav>"]

    kpis = [("customers segmented", load_summary.get("rows_used")), ("segments", len(descriptions))]
    if evaluation:
        kpis.append((f"NMI vs {evaluation.get('label_column')}", f"{evaluation['nmi']:.3f}"))
    info_rows = [(k, v) for k, v in run_info.items()]
    out.append("<section id='summary'><h2>Summary</h2>"
               + "".join(f"<span class='kpi'><b>{_esc(v)}</b>{_esc(k)}</span>" for k, v in kpis)
               + _table(["setting", "value"], info_rows) + "</section>")

    out.append("<section id='projection'><h2>Customers by segment (2-D projection)</h2>"
               + projection_chart(features, labels, descriptions, max_points, random_state) + "</section>")
    out.append("<section id='sizes'><h2>Segment sizes</h2>" + sizes_chart(descriptions) + "</section>")
    out.append("<section id='lifts'><h2>Feature lifts per segment</h2><p class='muted'>Segment mean / population "
               "mean; red above, blue below the average customer.</p>" + lift_chart(descriptions, feature_labels)
               + "</section>")

    if selection is not None:
        rows = [(k, f"{s:.3f}", f"{st:.3f}", "" if b is None else f"{b:.1f}", "✔" if k == selection.chosen_k else "")
                for k, s, st, b in zip(selection.k_values, selection.silhouette, selection.stability, selection.bic)]
        k_body = (k_selection_chart(selection) + f"<p><b>Rule.</b> {_esc(selection.rule)}</p>"
                  + _table(["k", "silhouette", "stability", "BIC", "chosen"], rows, (1, 2, 3)))
    else:
        k_body = f"<p>The number of segments ({len(descriptions)}) was fixed by the configuration or found by HDBSCAN.</p>"
    out.append("<section id='k-selection'><h2>Choosing the number of segments</h2>" + k_body + "</section>")

    term_rows = [(f"{d.segment}: {d.name}", ", ".join(t for t, _ in d.terms)) for d in descriptions]
    out.append("<section id='terms'><h2>Distinctive terms (class-based TF-IDF)</h2>"
               + _table(["segment", "top terms"], term_rows) + "</section>")

    out.append("<section id='segments'><h2>Segment profiles</h2><div class='cards'>"
               + "".join(_segment_card(d, c, feature_labels) for d, c in zip(descriptions, colors)) + "</div></section>")

    strategy_rows = []
    names = {d.segment: d.name for d in descriptions}
    for s in sorted(strategies, key=lambda s: s.segment):
        cells = [f"{s.segment}: {names.get(s.segment, s.name)}"]
        for field_name in FIELDS:
            rec = s.recommendations[field_name]
            cells.append(f"{rec.text} [rule: {rec.rule}; evidence: {'; '.join(rec.evidence)}]")
        strategy_rows.append(cells)
    out.append("<section id='strategies'><h2>Strategies</h2><p class='muted'>From the playbook "
               f"{_esc(run_info.get('playbook', ''))}; each cell names the rule and the evidence that fired it.</p>"
               + _table(["segment", *FIELDS], strategy_rows) + "</section>")

    if evaluation:
        metric_rows = [(k, f"{v:.4f}" if isinstance(v, float) else v) for k, v in evaluation.items()]
        body = _table(["metric", "value"], metric_rows)
        if contingency is not None:
            body += "<p class='muted'>Customers per segment (rows) and label (columns).</p>" + _table(
                ["segment", *[str(c) for c in contingency.columns]],
                [[f"{i}: {names.get(int(i), '')}", *row] for i, row in zip(contingency.index, contingency.to_numpy().tolist())],
                range(1, len(contingency.columns) + 1))
    else:
        body = "<p>No ground-truth label column in this data set, so no agreement scores.</p>"
    out.append("<section id='evaluation'><h2>Agreement with known labels</h2>" + body + "</section>")

    quality = [(k, load_summary.get(k)) for k in ("rows_in_files", "rows_excluded_by_selection", "rows_read",
                                                   "rows_used", "rows_rejected")]
    quality += [(f"rejected: {k}", v) for k, v in load_summary.get("rejects_by_check", {}).items()]
    for kind, counts in load_summary.get("filled", {}).items():
        quality += [(f"filled ({kind}): {c}", n) for c, n in counts.items()]
    if scrub_report:
        quality.append(("personal data scrubbing rules", ", ".join(scrub_report.get("rules", []))))
        quality += [(f"scrubbed: {k}", v) for k, v in scrub_report.get("replaced", {}).items()]
    else:
        quality.append(("personal data scrubbing", "off (data.scrub_pii=false)"))
    warnings = "".join(f"<li>{_esc(w)}</li>" for w in load_summary.get("warnings", []))
    out.append("<section id='data-quality'><h2>Data quality</h2><p class='muted'>rows read = rows used + rows "
               "rejected; rejected rows and reasons are in rejects.csv.</p>" + _table(["", "count"], quality, (1,))
               + (f"<ul>{warnings}</ul>" if warnings else "") + "</section>")
    out.append("</body></html>")
    return "".join(out)
