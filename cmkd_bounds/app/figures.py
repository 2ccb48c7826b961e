"""Figures: the matplotlib set-up every figure uses (:func:`pyplot`, :func:`png`), a bound report's four figures,
and the figure across the runs of ``evaluate --runs``. Figures are returned as PNG bytes and written atomically by
their callers."""

from __future__ import annotations

import io

import numpy as np

from cmkd_bounds import names
from cmkd_bounds.app.results import best_certified
from cmkd_bounds.bound_report import ASIDE, END, START, BoundReport
from cmkd_bounds.kinds import CERTIFIED, PLUG_IN


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    pyplot().close(fig)
    return buf.getvalue()


def fig_bound_gap(report: BoundReport) -> bytes:
    """Every bound on a log scale, the certified ones highlighted, with the observed values as lines."""
    plt = pyplot()
    forms = list(report.bounds)
    vals = np.array([max(report.bounds[k].value, 1e-6) for k in forms])
    colors = ["#55a868" if report.bounds[k].kind == CERTIFIED else "#dd8452" if report.bounds[k].kind == PLUG_IN
              else "#8c8c8c" for k in forms]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(forms) + 1.5))
    ax.barh(range(len(forms)), vals, color=colors)
    best = report.headline[names.BOUND_CERTIFIED]
    for i, (k, v) in enumerate(zip(forms, vals)):
        ax.text(v, i, f" {v:.3g}" + (f"  <- {names.BOUND_CERTIFIED}" if k == best else ""), va="center", fontsize=8,
                fontweight="bold" if k == best else None)
    o = report.observed
    for value, style, lab in ((o.risk, "-", "observed CE"), (o.risk_clipped, "--", "observed clipped CE"),
                              (o.error01, ":", "observed 0-1 error")):
        if value > 0:
            ax.axvline(value, color="k", ls=style, lw=1.2, label=f"{lab} {value:.3g}")
    ax.set_yticks(range(len(forms)), forms, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("nats (0-1 error for the Clopper-Pearson bar), log scale")
    ax.set_title("Bounds (green certified, orange plug-in, grey estimated) and observed values")
    ax.legend(fontsize=8, loc="lower right")
    return png(fig)


def fig_waterfall(report: BoundReport) -> bytes:
    """Each chain as a waterfall: from the observed risk, step by step, to the bound."""
    plt = pyplot()
    chains = list(report.chains.items())
    fig, axes = plt.subplots(1, len(chains), figsize=(6.5 * len(chains), 4.2))
    for ax, (name, chain) in zip(np.atleast_1d(axes), chains):
        steps = [x for x in chain if x.part != ASIDE]
        level, xs = 0.0, []
        for i, x in enumerate(steps):
            if x.part == START:
                ax.bar(i, x.value, color="#8172b2")
                level = x.value
            elif x.part == END:
                ax.bar(i, x.value, color="#55a868" if name == "certified" else "#dd8452")
            else:
                ax.bar(i, x.value, bottom=level, color="#4c72b0" if x.value >= 0 else "#c44e52")
                level += x.value
            top = x.value if x.part in (START, END) else level
            ax.text(i, max(top, 0), f"{x.value:+.3g}" if x.part not in (START, END) else f"{top:.3g}",
                    ha="center", va="bottom", fontsize=8)
            xs.append(x.step.replace(" (", "\n(").replace(": ", ":\n"))
        ax.set_xticks(range(len(steps)), xs, fontsize=7, rotation=20, ha="right")
        ax.set_ylabel("nats")
        ax.set_title(f"gap explained: {name}")
    return png(fig)


def fig_rates(report: BoundReport) -> bytes:
    plt = pyplot()
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
    return png(fig)


def fig_lipschitz(report: BoundReport) -> bytes:
    plt = pyplot()
    tau = report.term(names.TAU_FEATURE)
    lo = report.term(names.TAU_LOWER)
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
    return png(fig)



SHARPEST, FEATURE_FORM = names.bound_column(names.ASYMPTOTIC_SHARPEST), names.bound_column(names.ASYMPTOTIC_FEATURE)


def method_colour(methods, method) -> tuple:
    """A distinct colour for each of up to 20 methods (tab10, then tab20), in the order of ``methods``."""
    from matplotlib import colormaps

    palette = colormaps["tab10" if len(methods) <= 10 else "tab20"]
    return tuple(palette(list(methods).index(method) % palette.N))


def fig_runs(rows) -> bytes:
    """Across the runs of ``evaluate --runs``: the sharpest plug-in and the best certified bound against the observed
    risk, one panel per direction and label regime, one colour per method."""
    plt = pyplot()
    panels = sorted({(r["direction"], r["labels_per_class"]) for r in rows}, key=str)
    methods = sorted({r["method"] for r in rows})
    colors = {m: method_colour(methods, m) for m in methods}
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4), squeeze=False)
    for ax, (direction, k) in zip(axes[0], panels):
        rs = [r for r in rows if (r["direction"], r["labels_per_class"]) == (direction, k)]
        for m in methods:
            mr = [r for r in rs if r["method"] == m]
            if not mr:
                continue
            x = [r["observed_risk"] for r in mr]
            ax.scatter(x, [r[SHARPEST] for r in mr], color=colors[m], marker="o", s=18,
                       label=f"{m}: asymptotic (plug-in)")
            ax.scatter(x, [r[names.bound_column(best_certified(r))] for r in mr], color=colors[m], marker="^", s=18,
                       label=f"{m}: certified")
        lim = [min(r["observed_risk"] for r in rs) * 0.8, max(max(r[FEATURE_FORM] for r in rs), 1) * 1.2]
        ax.plot(lim, lim, "k:", lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("observed test CE")
        ax.set_title(f"{direction}, {'all labels' if not k else f'{k} labels/class'}", fontsize=9)
    axes[0][0].set_ylabel("bound (nats)")
    axes[0][-1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1, 1))
    return png(fig)
