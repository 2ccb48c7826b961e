r"""Does a bound predict the error? Rank correlations between every bound or term and the test error, over runs.

Following Jiang, Neyshabur, Mobahi, Krishnan & Bengio ("Fantastic Generalization Measures and Where to
Find Them", ICLR 2020), a measure is judged by how it *orders* models, not by its value:

- Kendall's ``tau`` (tau-b) between the measure and the test error (and the test risk) over the runs of
  one stratum (a teaching direction and a label regime), with a bootstrap percentile interval
  (runs resampled with replacement);
- the granulated coefficient ``Psi``: for each hyperparameter ``h`` that varies, the mean over the
  groups of runs that agree on every other hyperparameter (seed included) of the ``tau`` within the
  group, where only ``h`` changes; ``Psi`` is the mean over ``h``. It asks whether the measure tracks
  the error when one thing at a time is changed.

A measure is *label-free* when a user without any student label can compute it (teacher-side terms,
transports, the teacher's expected loss at the student's features): the truly unpaired user's question.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from cmkd_bounds import names
from cmkd_bounds.app import figures
from cmkd_bounds.app.results import BASELINES, LABEL_FREE

HYPER = ("method", "lambda_fa", "inner_lr", "n1")
STRATA = ("direction", "labels_per_class")
TARGETS = ("observed_error01", "observed_risk")
B = names.bound_column
READ = ((B(names.ASYMPTOTIC_FEATURE), "the paper's feature-space form"),
        (B(names.CERTIFIED_MARGINAL), "the certified transfer bound"),
        (B(names.ASYMPTOTIC_SHARPEST), "the sharpest asymptotic form"),
        (names.LABEL_ALIGNMENT, "the label-alignment term (it contains the student's test risk)"),
        (B(names.HELD_OUT_KL), "the held-out kl certificate (the student's labelled test loss)"),
        ("train_ce", "the student's training CE"))


def kendall(x, y) -> float:
    from scipy.stats import kendalltau

    x, y = np.asarray(x, float), np.asarray(y, float)
    ok = np.isfinite(x) & np.isfinite(y)
    if ok.sum() < 2 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return math.nan
    return float(kendalltau(x[ok], y[ok]).statistic)


def bootstrap_ci(x, y, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    x, y = np.asarray(x, float), np.asarray(y, float)
    rng = np.random.default_rng(seed)
    taus = []
    for _ in range(n_boot):
        i = rng.integers(0, len(x), len(x))
        t = kendall(x[i], y[i])
        if math.isfinite(t):
            taus.append(t)
    if not taus:
        return math.nan, math.nan
    lo, hi = np.percentile(taus, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(lo), float(hi)


def granulated(rows: list[dict], measure: str, target: str, hyper=HYPER) -> dict[str, float]:
    """``{h: Psi_h}`` for every hyperparameter that varies, and ``"psi"``, their mean."""
    out = {}
    varying = [h for h in hyper if len({str(r.get(h)) for r in rows}) > 1]
    for h in varying:
        groups = {}
        for r in rows:
            key = tuple(str(r.get(k)) for k in (*hyper, "seed") if k != h)
            groups.setdefault(key, []).append(r)
        taus = [kendall([r[measure] for r in g], [r[target] for r in g]) for g in groups.values()
                if len({str(r.get(h)) for r in g}) > 1]
        taus = [t for t in taus if math.isfinite(t)]
        if taus:
            out[h] = float(np.mean(taus))
    if out:
        out["psi"] = float(np.mean(list(out.values())))
    return out


def measures_of(rows: list[dict]) -> list[str]:
    """Every numeric column that is a bound, a term or a baseline (not a hyperparameter or an observation)."""
    skip = {*HYPER, *STRATA, *TARGETS, "seed", "run", "dataset", "protocol", "test_acc", "observed_risk_clipped",
            "steer_cos", "direction"}
    names = []
    for k in rows[0]:
        if k in skip:
            continue
        vals = [r.get(k) for r in rows]
        if all(isinstance(v, (int, float)) or v is None for v in vals) and any(v is not None for v in vals):
            names.append(k)
    return names


def correlate_rows(rows: list[dict], n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """One result row per (stratum, measure): tau with the error and the risk, its interval, and Psi."""
    strata = {}
    for r in rows:
        strata.setdefault(tuple(r[k] for k in STRATA), []).append(r)
    strata[("all", "all")] = rows
    out = []
    for key, rs in strata.items():
        for m in measures_of(rows):
            x = [r.get(m) if r.get(m) is not None else math.nan for r in rs]
            res = {"direction": key[0], "labels_per_class": key[1], "measure": m, "runs": len(rs),
                   "label_free": m in LABEL_FREE, "baseline": m in BASELINES}
            for t in TARGETS:
                y = [r[t] for r in rs]
                short = "error" if t == "observed_error01" else "risk"
                res[f"tau_{short}"] = kendall(x, y)
                res[f"tau_{short}_lo"], res[f"tau_{short}_hi"] = bootstrap_ci(x, y, n_boot, seed)
            g = granulated([{**r, m: xv} for r, xv in zip(rs, x)], m, "observed_error01")
            res["psi_error"] = g.get("psi", math.nan)
            res.update({f"psi_{h}": v for h, v in g.items() if h != "psi"})
            out.append(res)
    return out


def read_summary(path: str | Path) -> list[dict]:
    """The ``summary.csv`` that ``evaluate --runs`` writes, with numbers parsed."""
    def parse(v):
        if v in ("", "None"):
            return None
        try:
            return int(v)
        except ValueError:
            try:
                return float(v)
            except ValueError:
                return v

    with open(path) as fh:
        return [{k: parse(v) for k, v in r.items()} for r in csv.DictReader(fh)]


def correlate(eval_dir: str | Path, out: str | Path | None = None, n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """Read ``EVAL_DIR/summary.csv``; write ``correlation.csv``, ``correlation.md`` and ``correlation.png``."""
    from cmkd_bounds.app.tables import csv_text
    from cmkd_bounds.atomic import write_bytes, write_text

    eval_dir = Path(eval_dir)
    f = eval_dir / "summary.csv"
    if not f.is_file():
        raise FileNotFoundError(f"{f}: no summary of runs (write one with cmkd-bounds evaluate --runs RUNS --out "
                                f"{eval_dir})")
    rows = read_summary(f)
    if len(rows) < 3:
        raise ValueError(f"{f}: {len(rows)} runs; a rank correlation needs at least 3")
    res = correlate_rows(rows, n_boot, seed)
    out = Path(out or eval_dir)
    write_text(out / "correlation.csv", csv_text(res))
    write_text(out / "correlation.md", render(res, rows, eval_dir))
    write_bytes(out / "correlation.png", figure(rows, res))
    return res


def render(res: list[dict], rows: list[dict], eval_dir: Path) -> str:
    from cmkd_bounds.app.tables import markdown

    def ci(r, t):
        return f"{r[f'tau_{t}']:+.2f} [{r[f'tau_{t}_lo']:+.2f}, {r[f'tau_{t}_hi']:+.2f}]" \
            if math.isfinite(r[f"tau_{t}"]) else "-"

    lines = ["# Does the bound predict the error?", "",
             f"Written by `cmkd-bounds correlate {eval_dir}` over {len(rows)} runs. Kendall's tau (tau-b) between each "
             "measure and the student's test error (and test CE), with a 95 % bootstrap interval over runs; Psi is the "
             "granulated coefficient of Jiang et al. (ICLR 2020) over the hyperparameters that vary "
             f"({', '.join(HYPER)}). *label-free*: computable without any student label. Sorted by tau with the "
             "error.", ""]
    lines += within_strata(res)
    lines += reading(res, rows)
    for key in sorted({(r["direction"], r["labels_per_class"]) for r in res}, key=str):
        rs = sorted([r for r in res if (r["direction"], r["labels_per_class"]) == key],
                    key=lambda r: -r["tau_error"] if math.isfinite(r["tau_error"]) else 9)
        table = [{"measure": _name(r), "tau with error [95% CI]": ci(r, "error"),
                  "tau with CE [95% CI]": ci(r, "risk"), "Psi": r["psi_error"]} for r in rs]
        regime = "all strata" if key == ("all", "all") else _regime(key)
        lines += [f"## {regime} ({rs[0]['runs']} runs)", "", markdown(table, digits=2).strip(), ""]
    return "\n".join(lines) + "\n"


def _regime(key) -> str:
    k = key[1]
    return f"{key[0]}, {'all labels' if k in (0, '0') else f'{k} labels/class'}"


def _excludes_zero(r: dict) -> bool:
    """Whether the 95 % bootstrap interval of tau with the error excludes 0."""
    return r["tau_error_lo"] > 0 or r["tau_error_hi"] < 0


def _name(r: dict) -> str:
    return r["measure"] + (" (label-free)" if r["label_free"] else "") + (" (baseline)" if r["baseline"] else "")


def _within(res: list[dict]) -> tuple[list[tuple], list[dict]]:
    """The strata (direction x label budget, sorted) and the rows of ``res`` inside them with a finite tau."""
    strata = sorted({(r["direction"], r["labels_per_class"]) for r in res if r["direction"] != "all"}, key=str)
    return strata, [r for r in res if r["direction"] != "all" and math.isfinite(r["tau_error"])]


def _taus(within: list[dict], measure: str) -> list[float]:
    return [r["tau_error"] for r in within if r["measure"] == measure]


def within_strata(res: list[dict]) -> list[str]:
    """One row per measure, one column per stratum (direction x label budget): tau with the test error, starred
    where its 95 % bootstrap interval excludes 0; rows by their mean tau over the strata."""
    from cmkd_bounds.app.tables import markdown

    strata, within = _within(res)
    if len(strata) < 2:
        return []
    by = {(r["measure"], r["direction"], r["labels_per_class"]): r for r in within}

    def mean_tau(m):
        v = _taus(within, m)
        return sum(v) / len(v) if v else -9

    table = []
    for m in sorted(dict.fromkeys(r["measure"] for r in res), key=lambda m: -mean_tau(m)):
        row = {"measure": _name(next(r for r in res if r["measure"] == m))}
        for k in strata:
            r = by.get((m, *k))
            row[_regime(k)] = f"{r['tau_error']:+.2f}{'*' if _excludes_zero(r) else ''}" if r else "-"
        row["mean"] = f"{mean_tau(m):+.2f}"
        table.append(row)
    return ["## within each stratum: Kendall tau with the test error", "",
            "A stratum fixes the teaching direction and the label budget, so only the method and its hyperparameters "
            "vary. * : the 95 % bootstrap interval excludes 0.", "", markdown(table).strip(), ""]


def reading(res: list[dict], rows: list[dict]) -> list[str]:
    """The finding in words, every number computed here from the within-stratum taus and the runs."""
    strata, within = _within(res)
    if len(strata) < 2 or not within:
        return []
    free = [r for r in within if r["label_free"]]
    out = [f"**Reading** (computed by `correlate`) over {len(strata)} strata."]
    if free:
        free_means = [sum(v) / len(v) for v in (_taus(free, m) for m in dict.fromkeys(r["measure"] for r in free))]
        star = [r for r in free if _excludes_zero(r)]
        out = [f"**Reading** (computed by `correlate`). Over {len(strata)} strata: the label-free measures "
               f"({', '.join(dict.fromkeys(r['measure'] for r in free))}) have within-stratum tau from "
               f"{min(r['tau_error'] for r in free):+.2f} to {max(r['tau_error'] for r in free):+.2f} (means per "
               f"measure {min(free_means):+.2f} to {max(free_means):+.2f}); {len(star)} of {len(free)} intervals "
               f"exclude 0, {sum(r['tau_error'] < 0 for r in star)} of them with a negative tau."]
    for m, what in READ:
        v = _taus(within, m)
        if v:
            out.append(f"- {what} (`{m}`): mean {sum(v) / len(v):+.2f}, from {min(v):+.2f} to {max(v):+.2f}.")
    sharp, la = B(names.ASYMPTOTIC_SHARPEST), names.LABEL_ALIGNMENT
    d = [r[sharp] - r[la] for r in rows if r.get(sharp) is not None and r.get(la) is not None]
    if d:
        out.append(f"- `{sharp} - {la}` over the {len(d)} runs: from {min(d):.3f} to "
                   f"{max(d):.3f} (log C where the transported teacher term is at its cap).")
    return [*out, ""]


FIGURE_MEASURES = (B(names.CERTIFIED_MARGINAL), B(names.ASYMPTOTIC_SHARPEST), names.TRANSPORT_FEATURE,
                   B(names.HELD_OUT_KL))


def figure(rows: list[dict], res: list[dict]) -> bytes:
    """Measure against test error, one point per run coloured by method: the key measures (or, when a summary
    lacks them, the four with the largest |tau| over all runs), one row of panels per stratum."""
    plt = figures.pyplot()
    measures = [m for m in FIGURE_MEASURES if any(r.get(m) is not None for r in rows)]
    if not measures:
        overall = [r for r in res if r["direction"] == "all" and math.isfinite(r["tau_error"])]
        measures = [r["measure"] for r in sorted(overall, key=lambda r: -abs(r["tau_error"]))[:4]]
    strata = sorted({tuple(r[k] for k in STRATA) for r in rows}, key=str)
    methods = sorted({str(r["method"]) for r in rows})
    colors = dict(zip(methods, ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b2", "#937860")))
    fig, axes = plt.subplots(len(strata), len(measures), figsize=(3.3 * len(measures), 2.8 * len(strata)),
                             squeeze=False)
    for i, st in enumerate(strata):
        rs = [r for r in rows if tuple(r[k] for k in STRATA) == st]
        for j, m in enumerate(measures):
            ax = axes[i][j]
            for meth in methods:
                mr = [r for r in rs if str(r["method"]) == meth and r.get(m) is not None]
                ax.scatter([r[m] for r in mr], [r["observed_error01"] for r in mr], s=10, color=colors[meth],
                           label=meth)
            t = kendall([r.get(m) for r in rs], [r["observed_error01"] for r in rs])
            ax.set_title(f"{m}\n{st[0]}, labels {st[1] or 'all'}: tau {t:+.2f}", fontsize=7)
            ax.tick_params(labelsize=6)
            if j == 0:
                ax.set_ylabel("test error", fontsize=7)
    axes[0][-1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1, 1))
    fig.tight_layout()
    return figures.png(fig)
