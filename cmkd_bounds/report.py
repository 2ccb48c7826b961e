"""Render a :class:`~cmkd_bounds.theorem.BoundReport` into ``bound.json``, ``terms.csv``,
``report.md`` and three figures, every file written atomically."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import numpy as np

from cmkd_bounds.atomic import write_bytes, write_text
from cmkd_bounds.theorem import BoundReport


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(type(o))


def _clean(o):
    """JSON has no Inf/NaN: write them as strings so the file stays standard JSON."""
    if isinstance(o, dict):
        return {k: _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, (float, np.floating)) and not math.isfinite(o):
        return str(float(o))
    return o


def bound_json(report: BoundReport, extra: dict | None = None) -> str:
    d = report.to_dict()
    if extra:
        d["source"] = extra
    return json.dumps(_clean(d), indent=2, default=_json_default, allow_nan=False) + "\n"


def terms_csv(report: BoundReport) -> str:
    lines = ["name,value,kind,note"]
    for t in report.terms + list(report.bounds.values()):
        note = t.note.replace('"', "'")
        lines.append(f'{t.name},{t.value:.10g},{t.kind},"{note}"')
    return "\n".join(lines) + "\n"


def _fmt(v: float) -> str:
    return f"{v:.4g}" if math.isfinite(v) else str(v)


def report_md(report: BoundReport, title: str = "Bound report") -> str:
    d = report.to_dict()
    cert_ok = d["certified"]
    lines = [f"# {title}", ""]
    if not report.settings["cost_is_metric"]:
        lines += [f"**NOT CERTIFIED: the cost `{report.settings['cost']}` is not a metric; every bound below is "
                  "an estimate.**", ""]
    lines += [
        "| quantity | value | kind |", "| --- | --- | --- |",
        f"| observed student risk (CE, held out) | {_fmt(d['observed_risk'])} | observed |",
        f"| observed student risk, clipped at {report.settings['clip']} | {_fmt(d['observed_risk_clipped'])} "
        "| observed |",
        f"| observed student 0-1 error | {_fmt(d['observed_error01'])} | observed |",
    ]
    for name, b in report.bounds.items():
        lines.append(f"| bound: {name} | {_fmt(b.value)} | {b.kind} |")
    lines += ["", "Gap = bound - observed (relative: / bound). The asymptotic bound is compared with the CE risk, "
              "the finite-sample ones with the clipped risk they bound.", "",
              "| bound | gap | relative gap |", "| --- | --- | --- |"]
    for k, g in d["gap"].items():
        lines.append(f"| {k} | {_fmt(g['absolute'])} | {_fmt(g['relative'])} |")
    lines += ["", f"Certified bound: {_fmt(d['bound_certified'])} from `{d['bound_certified_from']}` "
              f"({'certified' if cert_ok else 'NOT certified'}); 0-1 corollary err01 <= "
              f"{_fmt(d['bound_error01']['certified'])}. Estimated bound: {_fmt(d['bound_estimated'])}.", "",
              "## Terms", "", "| term | value | kind | note |", "| --- | --- | --- | --- |"]
    for t in report.terms:
        lines.append(f"| {t.name} | {_fmt(t.value)} | {t.kind} | {t.note} |")
    if report.per_class:
        lines += ["", "## Class-conditional terms", "",
                  "| class | n student | n teacher | W1 | teacher risk (clipped) |", "| --- | --- | --- | --- | --- |"]
        for r in report.per_class:
            if r.get("n_student"):
                lines.append(f"| {r['class']} | {r['n_student']} | {r['n_teacher']} | {_fmt(r['w1'])} | "
                             f"{_fmt(r['teacher_risk_clipped'])} |")
    lines += ["", "## Assumptions", ""] + [f"- {a}" for a in report.assumptions]
    lines += ["", "## Settings", "", "```json", json.dumps(_clean(report.settings), indent=2, default=_json_default),
              "```", ""]
    return "\n".join(lines)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def fig_bound_gap(report: BoundReport) -> bytes:
    """Stacked terms of the asymptotic and finite-sample bounds beside the observed risk."""
    plt = _plt()
    t = {x.name: x.value for x in report.terms}
    stacks = {
        "asymptotic": [("R_T", t["teacher_risk"]), ("FA", t["feature_alignment"]), ("LA", t["label_alignment"])],
        "finite sample": [("R_T", t["teacher_risk_fs"]), ("FA", t["feature_alignment_fs"]),
                          ("LA", t["label_alignment_fs"])],
        "estimated": [("R_T", t["teacher_risk_fs"]), ("FA", t["feature_alignment_est"]),
                      ("LA", t["label_alignment_fs"])],
    }
    colors = {"R_T": "#4c72b0", "FA": "#dd8452", "LA": "#55a868"}
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, parts in enumerate(stacks.values()):
        pos = neg = 0.0
        for name, v in parts:
            base = pos if v >= 0 else neg
            ax.bar(i, v, bottom=base, color=colors[name], label=name if i == 0 else None)
            if v >= 0:
                pos += v
            else:
                neg += v
        ax.text(i, pos, f"{pos + neg:.3g}", ha="center", va="bottom", fontsize=8)
    obs = report.observed
    ax.bar(3, obs["risk"], color="#8172b2", label="observed CE")
    ax.bar(4, obs["error01"], color="#937860", label="observed 0-1")
    ax.set_xticks(range(5), [*stacks, "observed\nCE", "observed\n0-1"])
    ax.set_yscale("symlog", linthresh=1.0)
    ax.set_ylim(top=ax.get_ylim()[1] * 3)
    ax.set_ylabel("nats (symlog)")
    ax.set_title("Bound terms versus observed student risk")
    ax.legend(fontsize=8)
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
    ax.legend(fontsize=8)
    return _png(fig)


def fig_lipschitz(report: BoundReport) -> bytes:
    plt = _plt()
    t = {x.name: x for x in report.terms}
    lo, up = t["tau_lower"], t["tau_upper"]
    fig, ax = plt.subplots(figsize=(5, 3.5))
    bars = [("lower (ascent)", lo.value, "#55a868"), (f"upper ({up.kind})", up.value, "#c44e52")]
    ax.barh([b[0] for b in bars], [b[1] for b in bars], color=[b[2] for b in bars])
    for i, b in enumerate(bars):
        ax.text(b[1], i, f" {b[1]:.3g}", va="center")
    ratio = up.value / lo.value if lo.value > 0 else math.inf
    ax.set_title(f"tau_delta of f: upper / lower = {ratio:.3g}")
    ax.set_xlabel("Lipschitz constant")
    return _png(fig)


def write_report(report: BoundReport, folder: str | Path, title: str = "Bound report", extra: dict | None = None):
    """Write ``bound.json``, ``terms.csv``, ``report.md``, ``bound_gap.png``, ``rates.png``, ``lipschitz.png``."""
    folder = Path(folder)
    write_text(folder / "bound.json", bound_json(report, extra))
    write_text(folder / "terms.csv", terms_csv(report))
    write_text(folder / "report.md", report_md(report, title))
    write_bytes(folder / "bound_gap.png", fig_bound_gap(report))
    write_bytes(folder / "rates.png", fig_rates(report))
    write_bytes(folder / "lipschitz.png", fig_lipschitz(report))


def console_summary(report: BoundReport) -> str:
    d = report.to_dict()
    flag = "" if d["certified"] else "  [NOT CERTIFIED]"
    if not report.settings["cost_is_metric"]:
        flag = f"  [NOT CERTIFIED: cost {report.settings['cost']} is not a metric]"
    g = d["gap"]
    return (f"observed CE {d['observed_risk']:.4f} (clipped {d['observed_risk_clipped']:.4f}), 0-1 error "
            f"{d['observed_error01']:.4f}\n"
            f"bound asymptotic {d['bound_asymptotic']:.4g} ({d['bound_asymptotic_kind']}), gap "
            f"{g['asymptotic']['absolute']:.4g} ({100 * g['asymptotic']['relative']:.1f}%)\n"
            f"bound certified  {d['bound_certified']:.4g} ({report.bounds['certified'].kind}, "
            f"{d['bound_certified_from']}), gap {g['certified']['absolute']:.4g} "
            f"({100 * g['certified']['relative']:.1f}%){flag}\n"
            f"bound estimated  {d['bound_estimated']:.4g}, gap {g['estimated']['absolute']:.4g} "
            f"({100 * g['estimated']['relative']:.1f}%)")

