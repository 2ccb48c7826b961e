"""Render a :class:`~cmkd_bounds.theorem.BoundReport`: ``bound.json``, ``terms.csv``, ``report.md`` and four
figures, every file written atomically."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np

from cmkd_bounds.app.tables import csv_text, fmt, markdown
from cmkd_bounds.atomic import write_bytes, write_text
from cmkd_bounds.kinds import CERTIFIED, KIND_MEANINGS
from cmkd_bounds.theorem import BoundReport

FILES = ("bound.json", "terms.csv", "report.md", "bound_gap.png", "gap_waterfall.png", "rates.png", "lipschitz.png")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _json_default(o):
    if isinstance(o, (np.floating, np.integer, np.bool_)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(type(o))


def clean(o):
    """JSON has no Inf/NaN: write them as strings so the file stays standard JSON."""
    if isinstance(o, dict):
        return {k: clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [clean(v) for v in o]
    if isinstance(o, (float, np.floating)) and not math.isfinite(o):
        return str(float(o))
    return o


def bound_json(report: BoundReport, source: dict | None = None) -> str:
    d = report.to_dict()
    if source:
        d["source"] = source
    return json.dumps(clean(d), indent=2, default=_json_default, allow_nan=False) + "\n"


def terms_csv(report: BoundReport) -> str:
    rows = [{"name": t.name, "value": t.value, "kind": t.kind, "bounds": t.target or "", "note": t.note}
            for t in report.terms + list(report.bounds.values())]
    return csv_text(rows, ["name", "value", "kind", "bounds", "note"])


def report_md(report: BoundReport, title: str = "Bound report") -> str:
    d = report.to_dict()
    s = report.settings
    lines = [f"# {title}", "", report.summary, ""]
    if any("NOT CERTIFIED" in a for a in report.assumptions):
        lines += [f"**The feature cost `{s.cost}` does not allow certified feature-space transports; the forms that "
                  "use them are estimates (the logit-space transports and the held-out certificates are unaffected).**",
                  ""]
    o = report.observed
    head = [{"quantity": "observed student CE (held out)", "value": o["risk"], "kind": "observed", "bounds": ""},
            {"quantity": f"observed student CE clipped at {s.loss_clip}", "value": o["risk_clipped"],
             "kind": "observed", "bounds": ""},
            {"quantity": "observed student 0-1 error", "value": o["error01"], "kind": "observed", "bounds": ""}]
    for key, e in ((k, d[k]) for k in report.headline):
        head.append({"quantity": f"{key} ({e['form']})", "value": e["value"], "kind": e["kind"],
                     "bounds": e["bounds"] or "not a bound"})
    lines += ["## Headline", "", markdown(head, ["quantity", "value", "kind", "bounds"]),
              "Kinds: " + "; ".join(f"*{k}* {v}" for k, v in KIND_MEANINGS.items()).replace(
                  "1 - eta", f"{1 - s.eta:.2f}") + ".", ""]
    rows = [{"bound": k, "value": b.value, "kind": b.kind, "bounds": b.target or "not a bound",
             "gap": d["gap"][k]["absolute"], "relative gap": d["gap"][k]["relative"]} for k, b in report.bounds.items()]
    lines += ["## Every bound", "", "Gap = bound - observed (the clipped risk for clipped targets, the 0-1 error for "
              "the 0-1 certificate); relative gap = gap / bound.", "", markdown(rows), ""]
    for name, chain in report.chains.items():
        lines += [f"## The gap explained: {name}", "",
                  markdown([{"step": x["step"], "nats": x["value"]} for x in chain]), ""]
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
                            "student_teacher_loss", "w1_feature", "w1_margin", "metric", "term", "slack")
                if any(k in r for r in pc)]
        lines += ["## Class-conditional terms", "", markdown(pc, keys), ""]
    lines += ["## Assumptions", ""] + [f"- {a}" for a in report.assumptions]
    lines += ["", "## Settings", "", "```json", json.dumps(clean(s.as_dict()), indent=2, default=_json_default),
              "```", ""]
    return "\n".join(lines)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def fig_bound_gap(report: BoundReport) -> bytes:
    """Every bound on a log scale, the certified ones highlighted, with the observed values as lines."""
    plt = _plt()
    names = list(report.bounds)
    vals = np.array([max(report.bounds[k].value, 1e-6) for k in names])
    colors = ["#55a868" if report.bounds[k].kind == CERTIFIED else "#dd8452" if report.bounds[k].kind == "plug-in"
              else "#8c8c8c" for k in names]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(names) + 1.5))
    ax.barh(range(len(names)), vals, color=colors)
    best = report.headline["bound_certified"]
    for i, (k, v) in enumerate(zip(names, vals)):
        ax.text(v, i, f" {v:.3g}" + ("  <- bound_certified" if k == best else ""), va="center", fontsize=8,
                fontweight="bold" if k == best else None)
    o = report.observed
    for key, style, lab in (("risk", "-", "observed CE"), ("risk_clipped", "--", "observed clipped CE"),
                            ("error01", ":", "observed 0-1 error")):
        if o[key] > 0:
            ax.axvline(o[key], color="k", ls=style, lw=1.2, label=f"{lab} {o[key]:.3g}")
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("nats (0-1 error for the Clopper-Pearson bar), log scale")
    ax.set_title("Bounds (green certified, orange plug-in, grey estimated) and observed values")
    ax.legend(fontsize=8, loc="lower right")
    return _png(fig)


def fig_waterfall(report: BoundReport) -> bytes:
    """Each chain as a waterfall: from the observed risk, step by step, to the bound."""
    plt = _plt()
    chains = list(report.chains.items())
    fig, axes = plt.subplots(1, len(chains), figsize=(6.5 * len(chains), 4.2))
    for ax, (name, chain) in zip(np.atleast_1d(axes), chains):
        steps = [x for x in chain if x.get("kind") != "aside"]
        level, xs = 0.0, []
        for i, x in enumerate(steps):
            if x.get("kind") == "start":
                ax.bar(i, x["value"], color="#8172b2")
                level = x["value"]
            elif x.get("kind") == "end":
                ax.bar(i, x["value"], color="#55a868" if name == "certified" else "#dd8452")
            else:
                v = x["value"]
                ax.bar(i, v, bottom=level, color="#4c72b0" if v >= 0 else "#c44e52")
                level += v
            top = x["value"] if x.get("kind") in ("start", "end") else level
            ax.text(i, max(top, 0), f"{x['value']:+.3g}" if x.get("kind") not in ("start", "end") else f"{top:.3g}",
                    ha="center", va="bottom", fontsize=8)
            xs.append(x["step"].replace(" (", "\n(").replace(": ", ":\n"))
        ax.set_xticks(range(len(steps)), xs, fontsize=7, rotation=20, ha="right")
        ax.set_ylabel("nats")
        ax.set_title(f"gap explained: {name}")
    return _png(fig)


def fig_rates(report: BoundReport) -> bytes:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for role, cu in report.rate_curves.items():
        n = cu.sizes.astype(float)
        pts = ax.errorbar(n, cu.values.mean(1), yerr=cu.values.std(1), fmt="o", ms=4, capsize=2,
                          label=f"{role} samples")
        ax.plot(n, cu.predict(n), color=pts[0].get_color(),
                label=f"fit n^{cu.slope:.3f} (d_eff {cu.effective_dimension:.1f})")
        ax.fill_between(n, cu.band[0], cu.band[1], color=pts[0].get_color(), alpha=0.2)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("subsample size n")
    ax.set_ylabel("W1 between independent subsamples")
    ax.set_title("Empirical W1 rates (band: 95% bootstrap)")
    if not report.rate_curves:
        ax.text(0.5, 0.5, "too few samples for a rate curve", transform=ax.transAxes, ha="center")
    else:
        ax.legend(fontsize=8)
    return _png(fig)


def fig_lipschitz(report: BoundReport) -> bytes:
    plt = _plt()
    tau = report.term("tau_feature")
    lo = report.term("tau_lower")
    bars = [("largest gradient found (lower)", lo.value, "#55a868"),
            ("sharp constant (estimated)", tau.diagnostics["head_factor"] * tau.diagnostics["K_sharp"] /
             tau.diagnostics["temperature"], "#4c72b0"),
            (f"proved constant ({tau.kind})", tau.value, "#c44e52"),
            ("first version: 2 log C", tau.diagnostics["head_factor"] * tau.diagnostics["two_log_C"] /
             tau.diagnostics["temperature"], "#8c8c8c")]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.barh([b[0] for b in bars], [b[1] for b in bars], color=[b[2] for b in bars])
    for i, b in enumerate(bars):
        ax.text(b[1], i, f" {b[1]:.3g}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_title("tau of f in the feature space")
    ax.set_xlabel("Lipschitz constant")
    return _png(fig)


def write_report(report: BoundReport, folder: str | Path, title: str = "Bound report", source: dict | None = None):
    """Write every file of :data:`FILES` into ``folder``."""
    folder = Path(folder)
    write_text(folder / "bound.json", bound_json(report, source))
    write_text(folder / "terms.csv", terms_csv(report))
    write_text(folder / "report.md", report_md(report, title))
    write_bytes(folder / "bound_gap.png", fig_bound_gap(report))
    write_bytes(folder / "gap_waterfall.png", fig_waterfall(report))
    write_bytes(folder / "rates.png", fig_rates(report))
    write_bytes(folder / "lipschitz.png", fig_lipschitz(report))


def console_summary(report: BoundReport) -> str:
    d = report.to_dict()
    o = report.observed
    lines = [f"observed CE {o['risk']:.4f} (clipped {o['risk_clipped']:.4f}), 0-1 error {o['error01']:.4f}"]
    for key in report.headline:
        e = d[key]
        gap = d["gap"][e["form"]]
        lines.append(f"{key:22s} {fmt(e['value']):>8s}  {e['kind']:9s} {e['form']:28s} "
                     f"({e['bounds'] or 'not a bound'}; gap {fmt(gap['absolute'])}, {100 * gap['relative']:.1f}%)")
    if any("NOT CERTIFIED" in a for a in report.assumptions):
        lines.append(f"[NOT CERTIFIED: feature-space transports under cost {report.settings.cost}]")
    return "\n".join(lines)
