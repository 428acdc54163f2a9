"""``needs.html`` and ``migration.html``: self-contained pages (embedded PNGs, no scripts) in the style of report.html.

``needs.html`` (section ids in ``NEEDS_SECTIONS``): the heads and how they were evaluated, per target
its metrics, confusion matrix and per-class report, reliability diagrams, few-shot curves, and the
recommendations' hit rates against the most-popular baselines.
``migration.html`` (``MIGRATION_SECTIONS``): the two snapshots, the migration heat map, movers, customers
far from every segment, drift of the segment descriptions and the re-fit decision.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from segmentation.report import CSS, _esc, _figure, _png, _table

NEEDS_SECTIONS = ("summary", "targets", "calibration", "few-shot", "recommendations")
MIGRATION_SECTIONS = ("summary", "migration", "movers", "emerging", "drift", "refit")
MAX_CONFUSION_CLASSES = 30


def _page(title: str, sections: Sequence[tuple[str, str, str]]) -> str:
    nav = "".join(f"<a href='#{sid}'>{_esc(heading)}</a>" for sid, heading, _ in sections)
    body = "".join(f"<section id='{sid}'><h2>{_esc(heading)}</h2>{content}</section>"
                   for sid, heading, content in sections)
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_esc(title)}</title>"
            f"<style>{CSS}</style></head><body><h1>{_esc(title)}</h1><nav>{nav}</nav>{body}</body></html>")


def _fmt(value) -> str:
    if isinstance(value, float):
        return "n/a" if not np.isfinite(value) else f"{value:.4f}"
    return "n/a" if value is None else str(value)


def confusion_chart(matrix: Sequence[Sequence[int]], classes: Sequence[str], title: str) -> str:
    matrix = np.asarray(matrix, dtype=float)
    if len(classes) > MAX_CONFUSION_CLASSES:
        return f"<p class='muted'>{len(classes)} classes: confusion matrix in needs.json.</p>"
    shares = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    size = 0.45 * len(classes) + 2.5
    fig = _figure(size + 1, size)
    ax = fig.add_subplot()
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(classes)):
        for j in range(len(classes)):
            if matrix[i, j]:
                ax.text(j, i, f"{int(matrix[i, j])}", ha="center", va="center", fontsize=7,
                        color="white" if shares[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(classes)), [str(c)[:18] for c in classes], rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(classes)), [str(c)[:18] for c in classes], fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label="share of the true class")
    return _png(fig)


def reliability_chart(curves: dict[str, dict]) -> str:
    fig = _figure(5.5, 4.5)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect calibration")
    for name, curve in curves.items():
        ax.plot(curve["confidence"], curve["frequency"], marker="o", label=name[:60])
    ax.set_xlabel("predicted probability (bin mean)")
    ax.set_ylabel("observed frequency")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    return _png(fig)


def few_shot_chart(curves: dict[str, list[dict]], metric: str = "macro_f1") -> str:
    fig = _figure(6, 4)
    ax = fig.add_subplot()
    for name, curve in curves.items():
        shots = [p["shots"] for p in curve]
        mean = np.array([p[metric] for p in curve])
        std = np.array([p[f"{metric}_std"] for p in curve])
        ax.plot(shots, mean, marker="o", label=name[:50])
        ax.fill_between(shots, mean - std, mean + std, alpha=0.15)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("labelled customers per class")
    ax.set_ylabel(metric.replace("_", "-"))
    ax.legend(fontsize=7)
    return _png(fig)


def hit_rate_chart(scores: dict[str, dict], ks: Sequence[int]) -> str:
    fig = _figure(7, 3.8)
    ax = fig.add_subplot()
    width = 0.8 / max(len(scores), 1)
    for i, (name, values) in enumerate(scores.items()):
        ax.bar(np.arange(len(ks)) + i * width, [values.get(f"hit_rate@{k}", np.nan) for k in ks], width, label=name)
    ax.set_xticks(np.arange(len(ks)) + width * (len(scores) - 1) / 2, [f"hit rate@{k}" for k in ks])
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7)
    return _png(fig)


def render_needs_report(title: str, summary: dict, run_info: dict) -> str:
    targets = summary.get("targets") or {}
    info = [(k, v) for k, v in run_info.items()] + [("evaluation", summary.get("scheme") or "no heads"),
                                                     ("head features", ", ".join(summary.get("features") or []))]
    info += [("note", n) for n in summary.get("notes", [])]
    sections = [("summary", "Summary", _table(["setting", "value"], info) + "<p class='muted'>Evaluation is out of "
                 "sample (the test split held out, or k-fold); the saved heads are refitted on every labelled row.</p>")]

    parts = []
    for spec, evaluation in targets.items():
        keys = [k for k in ("n_evaluated", "accuracy", "subset_accuracy", "macro_f1", "micro_f1", "weighted_f1", "f1",
                            "roc_auc", "pr_auc", "roc_auc_ovr", "roc_auc_macro", "pr_auc_macro", "hamming_loss",
                            "log_loss", "brier", "ece", "positive_rate", "n_unseen_class") if k in evaluation]
        body = f"<h3>{_esc(spec)} <span class='muted'>({_esc(evaluation['kind'])})</span></h3>"
        body += _table(["metric", "value"], [(k, _fmt(evaluation[k])) for k in keys], (1,))
        if "confusion" in evaluation:
            body += confusion_chart(evaluation["confusion"], evaluation["classes"], f"{spec}: confusion matrix")
        per_class = [(name, _fmt(v.get("precision")), _fmt(v.get("recall")), _fmt(v.get("f1-score")), v.get("support"))
                     for name, v in evaluation.get("per_class", {}).items() if isinstance(v, dict) and name in
                     evaluation.get("classes", [])]
        if per_class:
            body += _table(["class", "precision", "recall", "F1", "support"], per_class, (1, 2, 3, 4))
        parts.append(body)
    sections.append(("targets", "Need prediction", "".join(parts) or "<p>No need heads were fitted.</p>"))

    curves = {f"{spec} (ECE {e['ece']:.3f})": e["reliability"] for spec, e in targets.items() if "reliability" in e}
    events = _table(["target", "event", "ECE", "Brier"], [(spec, e.get("event", ""), _fmt(e["ece"]), _fmt(e["brier"]))
                                                         for spec, e in targets.items() if "reliability" in e], (2, 3))
    sections.append(("calibration", "Calibration", (reliability_chart(curves) + events + "<p class='muted'>Equal-width "
                     "bins; ECE = sum over bins of (share of predictions) x |observed frequency - mean prediction|.</p>")
                     if curves else "<p>No heads.</p>"))

    few_shot = summary.get("few_shot") or {}
    if few_shot:
        rows = [(spec, p["shots"], p["n_labelled"], _fmt(p["accuracy"]), _fmt(p["macro_f1"]))
                for spec, curve in few_shot.items() for p in curve]
        body = few_shot_chart(few_shot) + _table(["target", "per class", "labelled rows", "accuracy", "macro-F1"], rows,
                                                (1, 2, 3, 4))
    else:
        body = "<p>No few-shot curve (needs.few_shot.shots is empty or no binary/multi-class target).</p>"
    sections.append(("few-shot", "Label efficiency (few-shot)", body))

    recommendations = summary.get("recommendations")
    if recommendations:
        scores = recommendations["scores"]
        ks = sorted({int(k.split("@")[1]) for s in scores.values() for k in s if k.startswith("hit_rate@")})
        rows = [(name, *[_fmt(s.get(f"hit_rate@{k}")) for k in ks], *[_fmt(s.get(f"recall@{k}")) for k in ks])
                for name, s in scores.items()]
        body = (f"<p>{recommendations['rows']} customers not seen by the need head; held-out purchases from "
                f"{_esc(recommendations['heldout_column'])}; need head {_esc(recommendations['need_target'])}, "
                f"need weight {recommendations['need_weight']}.</p>" + hit_rate_chart(scores, ks)
                + _table(["ranking", *[f"hit@{k}" for k in ks], *[f"recall@{k}" for k in ks]], rows,
                         range(1, 2 * len(ks) + 1)))
    else:
        body = "<p>Recommendations were not evaluated (no purchase or held-out columns).</p>"
    sections.append(("recommendations", "Recommendations", body))
    return _page(f"{title}: needs and recommendations", sections)


def migration_chart(matrix: pd.DataFrame, names: dict[int, str]) -> str:
    counts = matrix.to_numpy(dtype=float)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig = _figure(0.9 * counts.shape[1] + 3.5, 0.6 * counts.shape[0] + 2)
    ax = fig.add_subplot()
    image = ax.imshow(shares, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=8,
                    color="black" if shares[i, j] > 0.6 else "white")
    ax.set_yticks(range(counts.shape[0]), [f"{s}: {names.get(int(s), '')}"[:40] if str(s).lstrip("-").isdigit() else str(s)
                                           for s in matrix.index], fontsize=7)
    ax.set_xticks(range(counts.shape[1]), [str(s) for s in matrix.columns], fontsize=8)
    ax.set_xlabel("segment after")
    ax.set_ylabel("segment before")
    fig.colorbar(image, ax=ax, label="share of the row (customers before)")
    return _png(fig)


def render_migration_report(title: str, report: dict, matrix: pd.DataFrame, names: dict[int, str]) -> str:
    kpis = [("customers in both snapshots", report["matched"]), ("moved", f"{report['moved_share']:.1%}"),
            ("far from every segment (after)", f"{report['emerging']['share']:.1%}"),
            ("drift score", f"{report['drift']['score']:.3f}"), ("re-fit", "yes" if report["refit"]["needed"] else "no")]
    summary = "".join(f"<span class='kpi'><b>{_esc(v)}</b>{_esc(k)}</span>" for k, v in kpis)
    summary += _table(["", "value"], [(k, report[k]) for k in ("before", "after", "matched", "only_before", "only_after")])
    sections = [("summary", "Summary", summary)]
    sections.append(("migration", "Migration between segments", migration_chart(matrix, names)
                     + "<p class='muted'>Rows: segment in the earlier snapshot; columns: segment in the later one; "
                       "numbers are customers, colour the share of the row.</p>"))
    movers = report.get("movers_by_pair", [])
    body = _table(["from", "to", "customers"], [(f"{m['from']}: {names.get(m['from'], '')}",
                                                 f"{m['to']}: {names.get(m['to'], '')}", m["count"]) for m in movers[:15]],
                  (2,))
    truth = report.get("ground_truth")
    if truth:
        body += "<p>Against the data's own movers column:</p>" + _table(["", "value"],
                                                                         [(k, _fmt(v)) for k, v in truth.items()], (1,))
    sections.append(("movers", "Customers who moved", f"<p>{report['moved']} of {report['matched']} customers changed "
                     f"segment ({report['moved_share']:.1%}); movers.csv lists them.</p>" + body))
    emerging = report["emerging"]
    body = (f"<p>{emerging['count']} of {report['after']} customers ({emerging['share']:.1%}) are farther from every "
            f"segment centre than {emerging['threshold']:.4f}, the {emerging['quantile']:.0%} quantile of the earlier "
            f"snapshot's distances (expected share without change: {1 - emerging['quantile']:.1%}).</p>")
    if emerging.get("signals"):
        body += _table(["feature", "far customers", "all (after)", "std. diff"],
                       [(s["feature"], _fmt(s["far_mean"]), _fmt(s["all_mean"]), f"{s['std_diff']:+.2f}")
                        for s in emerging["signals"]], (1, 2, 3))
    sections.append(("emerging", "Emerging groups", body))
    drift = report["drift"]
    rows = [(f"{d['segment']}: {names.get(d['segment'], '')}", f"{d['share_before']:.1%}", f"{d['share_after']:.1%}",
             _fmt(d["mean_abs_std_diff_change"]), _fmt(d["term_overlap"]), ", ".join(d["top_changes"]))
            for d in drift["segments"]]
    sections.append(("drift", "Drift in the segment descriptions", f"<p>{_esc(drift['definition'])}</p>"
                     + _table(["segment", "share before", "share after", "mean |Δ std. diff|", "top-term overlap",
                               "largest changes"], rows, (1, 2, 3, 4))))
    refit = report["refit"]
    sections.append(("refit", "Re-fit decision", f"<p><b>{'Re-fit' if refit['needed'] else 'No re-fit needed'}.</b> "
                     f"{_esc(refit['reason'])}</p>" + (f"<p>Re-fitted model: {_esc(refit['model_dir'])}</p>"
                                                      if refit.get("model_dir") else "")))
    return _page(f"{title}: segment migration", sections)
