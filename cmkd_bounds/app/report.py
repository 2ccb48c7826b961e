"""Render a :class:`~cmkd_bounds.bound_report.BoundReport`: ``bound.json`` (through :mod:`cmkd_bounds.app.results`),
``terms.csv``, ``report.md`` and four figures (:mod:`cmkd_bounds.app.figures`), every file written atomically."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cmkd_bounds import names
from cmkd_bounds.app import figures
from cmkd_bounds.app.results import to_json, write_bound_json, write_items
from cmkd_bounds.app.tables import csv_text, fmt, markdown
from cmkd_bounds.atomic import write_bytes, write_text
from cmkd_bounds.bound_report import BoundReport
from cmkd_bounds.kinds import KIND_MEANINGS


def terms_csv(report: BoundReport) -> str:
    rows = [{"name": t.name, "value": t.value, "kind": t.kind, "bounds": t.target or "", "note": t.note}
            for t in report.terms + list(report.bounds.values())]
    return csv_text(rows, ["name", "value", "kind", "bounds", "note"])


def report_md(report: BoundReport, title: str = "Bound report") -> str:
    s = report.settings
    lines = [f"# {title}", "", report.summary, ""]
    if report.not_certified:
        lines += [f"**The feature cost `{s.cost}` does not allow certified feature-space transports; the forms that "
                  "use them are estimates (the logit-space transports and the held-out certificates are unaffected).**",
                  ""]
    o = report.observed
    head = [{"quantity": "observed student CE (held out)", "value": o.risk, "kind": "observed", "bounds": ""},
            {"quantity": f"observed student CE clipped at {s.loss_clip}", "value": o.risk_clipped,
             "kind": "observed", "bounds": ""},
            {"quantity": "observed student 0-1 error", "value": o.error01, "kind": "observed", "bounds": ""}]
    for key in report.headline:
        e = report.headline_record(key)
        head.append({"quantity": f"{key} ({e.form})", "value": e.value, "kind": e.kind,
                     "bounds": e.bounds or "not a bound"})
    lines += ["## Headline", "", markdown(head, ["quantity", "value", "kind", "bounds"]),
              "Kinds: " + "; ".join(f"*{k}* {v}" for k, v in KIND_MEANINGS.items()).replace(
                  "1 - eta", f"{1 - s.eta:.2f}") + ".", ""]
    gaps = {k: report.gap(k) for k in report.bounds}
    rows = [{"bound": k, "value": b.value, "kind": b.kind, "bounds": b.target or "not a bound",
             "gap": gaps[k]["absolute"], "relative gap": gaps[k]["relative"]} for k, b in report.bounds.items()]
    lines += ["## Every bound", "", "Gap = bound - observed (the clipped risk for clipped targets, the 0-1 error for "
              "the 0-1 certificate); relative gap = gap / bound.", "", markdown(rows), ""]
    for name, chain in report.chains.items():
        lines += [f"## The gap explained: {name}", "",
                  markdown([{"step": x.step, "nats": x.value} for x in chain]), ""]
    tr = [{"transport": t.name, "L": t.lipschitz.value, "L kind": t.lipschitz.kind, "W1": t.w1.value,
           "W1 by": t.w1.method + (f" (width {t.w1.relative_width:.2g})" if t.w1.method == "bracket" else ""),
           "truncated at": t.truncated_at if t.truncated_at else "-", "L W1": t.value, "kind": t.kind,
           "why this solver": t.w1.diagnostics.get("choice", "-")} for t in report.transports]
    lines += ["## Transports of the teacher's expected loss", "", markdown(tr), "",
              "## Terms", "", markdown([{"term": t.name, "value": t.value, "kind": t.kind, "note": t.note}
                                        for t in report.terms]), ""]
    pc = [r for r in report.per_class if r.get("n_student")]
    if pc:
        keys = [k for k in ("class", "n_student", "n_teacher", "pi_student", "teacher_risk_clipped",
                            "student_teacher_loss", names.W1_FEATURE, "w1_margin", "metric", "term", "slack")
                if any(k in r for r in pc)]
        lines += ["## Class-conditional terms", "", markdown(pc, keys), ""]
    lines += few_label_section(report)
    lines += ["## Assumptions", ""] + [f"- {a}" for a in report.assumptions]
    lines += ["", "## Settings", "", "```json", to_json(s.as_dict()).rstrip("\n"), "```", ""]
    return "\n".join(lines)


def few_label_section(report: BoundReport) -> list[str]:
    """With few labels: every few-label certificate of the pool and of the population, side by side, and how well each
    surrogate predicts the loss on the labelled items."""
    if not report.pool:
        return []
    p, rows = report.pool, []
    for form in names.FEW_LABEL:
        pool, pop = report.bounds[names.pool_form(form)], report.bounds[form]
        rows.append({"certificate": form, "pool": pool.value, "population": pop.value, "bounds": pop.target,
                     "how": pop.note.split(", at eta / 2")[0]})
    hidden = (f" The pool's own clipped risk is {p['hidden_risk_clipped']:.4g} and its 0-1 error "
              f"{p['hidden_error01']:.4g} ({p['note']})." if "hidden_risk_clipped" in p else "")
    items = report.items
    lab = items["labelled"]
    corr = []
    for s in names.SURROGATES:
        target = items["error" if s.endswith("confidence") else "loss_clipped"][lab]
        g = items[f"surrogate_{s}"][lab]
        r = float(np.corrcoef(g, target)[0, 1]) if np.ptp(g) > 0 and np.ptp(target) > 0 else float("nan")
        corr.append({"surrogate": s, "predicts": "0-1 error" if s.endswith("confidence") else "clipped CE",
                     "correlation on the labelled items": r})
    return ["## Few labels", "", f"{p['labelled']} of the {p['n']} student items are labelled ({p['draw']}). The pool "
            f"column certifies the clipped risk (or 0-1 error) of the {p['n']}-item pool; the population column lifts "
            "it to the population (eta split in halves). Each holds with probability >= "
            f"{1 - report.settings.eta:.2f} on its own.{hidden}", "", markdown(rows), "",
            "How well each label-free surrogate predicts the loss (Pearson correlation on the labelled items; a "
            "prediction-powered certificate gains only when it is high):", "", markdown(corr), ""]


def write_report(report: BoundReport, folder: str | Path, title: str = "Bound report", source: dict | None = None):
    """Write every file of :data:`cmkd_bounds.app.results.REPORT_FILES` into ``folder``."""
    folder = Path(folder)
    write_bound_json(report, folder, source)
    write_items(report, folder)
    write_text(folder / "terms.csv", terms_csv(report))
    write_text(folder / "report.md", report_md(report, title))
    write_bytes(folder / "bound_gap.png", figures.fig_bound_gap(report))
    write_bytes(folder / "gap_waterfall.png", figures.fig_waterfall(report))
    write_bytes(folder / "rates.png", figures.fig_rates(report))
    write_bytes(folder / "lipschitz.png", figures.fig_lipschitz(report))


def console_summary(report: BoundReport) -> str:
    o = report.observed
    lines = [f"observed CE {o.risk:.4f} (clipped {o.risk_clipped:.4f}), 0-1 error {o.error01:.4f}"]
    for key in report.headline:
        e = report.headline_record(key)
        gap = report.gap(e.form)
        lines.append(f"{key:22s} {fmt(e.value):>8s}  {e.kind:9s} {e.form:28s} "
                     f"({e.bounds or 'not a bound'}; gap {fmt(gap['absolute'])}, {100 * gap['relative']:.1f}%)")
    if report.not_certified:
        lines.append(f"[NOT CERTIFIED: feature-space transports under cost {report.settings.cost}]")
    return "\n".join(lines)
