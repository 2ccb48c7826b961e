r"""Does a bound predict the error? Rank correlations between every bound, term or predictor and the test error.

Following Jiang, Neyshabur, Mobahi, Krishnan & Bengio ("Fantastic Generalization Measures and Where to
Find Them", ICLR 2020), a measure is judged by how it *orders* models, not by its value:

- Kendall's ``tau`` (tau-b) between the measure and the test error (and the test risk) over the runs of
  one stratum (one dataset, one teaching direction, one label budget), with a bootstrap percentile
  interval (runs resampled with replacement);
- the granulated coefficient ``Psi``: for each hyperparameter ``h`` that varies, the mean over the
  groups of runs that agree on every other hyperparameter (seed included) of the ``tau`` within the
  group, where only ``h`` changes; ``Psi`` is the mean over ``h``. It asks whether the measure tracks
  the error when one thing at a time is changed;
- the sign-error of Dziugaite, Drouin et al. ("In search of robust measures of generalization",
  NeurIPS 2020): over the pairs of runs that differ in one hyperparameter only, the fraction where the
  measure moves against the error (0 is perfect, 0.5 is chance); *robust* is its worst value over the
  hyperparameters (the worst family of such interventions).

A measure is *label-free* when a user without any student label can compute it (teacher-side terms,
transports, the label-free error predictors: average confidence, ATC, COT, and GDE, the disagreement of two
students of one configuration trained with different seeds, read from their stored test predictions). Runs
of different data are never pooled: the pooled stratum is per dataset.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from cmkd_bounds import names
from cmkd_bounds.app import figures
from cmkd_bounds.app.results import BASELINES, ITEMS, LABEL_FREE

HYPER = ("method", "lambda_fa", "inner_lr", "n1")
FEW_RUNS = 10  # below this many runs in a group, the report says its bootstrap intervals say little
STRATA = ("data", "direction", "labels_per_class")
TARGETS = ("observed_error01", "observed_risk")
ALL = "all"
GDE = "predictor_gde"
B = names.bound_column
READ = ((B(names.ASYMPTOTIC_FEATURE), "the paper's feature-space form"),
        (B(names.CERTIFIED_MARGINAL), "the certified transfer bound"),
        (B(names.ASYMPTOTIC_SHARPEST), "the sharpest asymptotic form"),
        (names.LABEL_ALIGNMENT, "the label-alignment term (it contains the student's test risk)"),
        (B(names.HELD_OUT_KL), "the held-out kl certificate (the student's labelled test loss)"),
        ("train_ce", "the student's training CE"))
PREDICTORS = ((names.PREDICTOR_DOC, "average confidence (DoC)"), (names.PREDICTOR_ATC, "ATC"),
              (GDE, "GDE (disagreement of two seeds)"), (names.PREDICTOR_COT, "COT"))


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


def _groups(rows: list[dict], h: str, hyper=HYPER) -> list[list[dict]]:
    """Groups of runs that agree on every hyperparameter but ``h`` (seed included) and differ in ``h``."""
    groups = {}
    for r in rows:
        groups.setdefault(tuple(str(r.get(k)) for k in (*hyper, "seed") if k != h), []).append(r)
    return [g for g in groups.values() if len({str(r.get(h)) for r in g}) > 1]


def granulated(rows: list[dict], measure: str, target: str, hyper=HYPER) -> dict[str, float]:
    """``{h: Psi_h}`` for every hyperparameter that varies, and ``"psi"``, their mean."""
    out = {}
    for h in [h for h in hyper if len({str(r.get(h)) for r in rows}) > 1]:
        taus = [kendall([r[measure] for r in g], [r[target] for r in g]) for g in _groups(rows, h, hyper)]
        taus = [t for t in taus if math.isfinite(t)]
        if taus:
            out[h] = float(np.mean(taus))
    if out:
        out["psi"] = float(np.mean(list(out.values())))
    return out


def sign_error(rows: list[dict], measure: str, target: str, hyper=HYPER) -> tuple[float, float]:
    """``(mean, robust)``: over the pairs of runs that differ in one hyperparameter only (and change the error), the
    fraction where the measure and the error move in opposite directions (ties in the measure count one half); the
    mean over all such pairs, and the worst mean over the hyperparameters."""
    per_h = {}
    for h in [h for h in hyper if len({str(r.get(h)) for r in rows}) > 1]:
        errs = []
        for g in _groups(rows, h, hyper):
            for i in range(len(g)):
                for j in range(i + 1, len(g)):
                    dm = g[i][measure] - g[j][measure]
                    de = g[i][target] - g[j][target]
                    if not (math.isfinite(dm) and math.isfinite(de)) or de == 0:
                        continue
                    errs.append(0.5 if dm == 0 else float(np.sign(dm) != np.sign(de)))
        if errs:
            per_h[h] = errs
    if not per_h:
        return math.nan, math.nan
    return float(np.mean([e for v in per_h.values() for e in v])), float(max(np.mean(v) for v in per_h.values()))


def measures_of(rows: list[dict]) -> list[str]:
    """Every numeric column that is a bound, a term, a predictor or a baseline (not a hyperparameter or an
    observation)."""
    skip = {*HYPER, *STRATA, *TARGETS, "seed", "run", "dataset", "protocol", "test_acc", "observed_risk_clipped",
            "steer_cos"}
    out = []
    for k in dict.fromkeys(k for r in rows for k in r):
        if k in skip:
            continue
        vals = [r.get(k) for r in rows]
        if all(isinstance(v, (int, float)) or v is None for v in vals) and any(v is not None for v in vals):
            out.append(k)
    return out


def _key(r: dict) -> tuple:
    return tuple(r.get(k, r.get("dataset", "-")) if k == "data" else r[k] for k in STRATA)


def correlate_rows(rows: list[dict], n_boot: int = 1000, seed: int = 0) -> list[dict]:
    """One result row per (stratum, measure): tau with the error and the risk, its interval, Psi and the sign-error.
    A stratum is (data, direction, label budget); ``(data, "all", "all")`` pools the runs of one dataset."""
    strata = {}
    for r in rows:
        strata.setdefault(_key(r), []).append(r)
        strata.setdefault((_key(r)[0], ALL, ALL), []).append(r)
    out = []
    for key, rs in strata.items():
        for m in measures_of(rows):
            x = [r.get(m) if r.get(m) is not None else math.nan for r in rs]
            res = {**dict(zip(STRATA, key)), "measure": m, "runs": len(rs), "label_free": m in LABEL_FREE,
                   "baseline": m in BASELINES}
            for t in TARGETS:
                y = [r[t] for r in rs]
                short = "error" if t == "observed_error01" else "risk"
                res[f"tau_{short}"] = kendall(x, y)
                res[f"tau_{short}_lo"], res[f"tau_{short}_hi"] = bootstrap_ci(x, y, n_boot, seed)
            marked = [{**r, m: xv} for r, xv in zip(rs, x)]
            g = granulated(marked, m, "observed_error01")
            res["psi_error"] = g.get("psi", math.nan)
            res.update({f"psi_{h}": v for h, v in g.items() if h != "psi"})
            res["sign_error"], res["sign_error_robust"] = sign_error(marked, m, "observed_error01")
            out.append(res)
    return out


def add_disagreement(rows: list[dict], eval_dir: Path) -> list[dict]:
    """GDE (Jiang et al., ICLR 2022): for each run, the mean fraction of test items on which it and a run of the same
    configuration with another seed predict differently (``items.npz`` of both evaluations); no label is used. Runs
    without a partner, or whose items differ, get none."""
    preds = {}
    for r in rows:
        f = eval_dir / str(r["run"]) / ITEMS
        if f.exists():
            preds[r["run"]] = np.load(f)["prediction"]
    config = ("data", "direction", "labels_per_class", "protocol", *HYPER)
    by = {}
    for r in rows:
        by.setdefault(tuple(str(r.get(k)) for k in config), []).append(r)
    out = []
    for r in rows:
        partners = [p for p in by[tuple(str(r.get(k)) for k in config)] if p["seed"] != r["seed"]]
        d = [float(np.mean(preds[r["run"]] != preds[p["run"]])) for p in partners
             if r["run"] in preds and p["run"] in preds and len(preds[p["run"]]) == len(preds[r["run"]])]
        out.append({**r, GDE: float(np.mean(d)) if d else None})
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
    rows = add_disagreement(rows, eval_dir)
    res = correlate_rows(rows, n_boot, seed)
    out = Path(out or eval_dir)
    write_text(out / "correlation.csv", csv_text(res))
    command = f"cmkd-bounds correlate {eval_dir}" + (f" --out {out}" if out != eval_dir else "") + (
        f" --bootstrap {n_boot}" if n_boot != 1000 else "")
    write_text(out / "correlation.md", render(res, rows, command))
    write_bytes(out / "correlation.png", figure(rows, res))
    return res


# ----------------------------------------------------------------------------- the report
def _single_data(res) -> bool:
    return len({r["data"] for r in res}) == 1


def _regime(key, single: bool = True) -> str:
    data, direction, k = key
    if direction == ALL:
        return "all strata" if single else f"{data}, all strata"
    label = f"{direction}, {'all labels' if k in (0, '0') else f'{k} labels/class'}"
    return label if single else f"{data}: {label}"


def _excludes_zero(r: dict) -> bool:
    """Whether the 95 % bootstrap interval of tau with the error excludes 0."""
    return r["tau_error_lo"] > 0 or r["tau_error_hi"] < 0


def _name(r: dict) -> str:
    return r["measure"] + (" (label-free)" if r["label_free"] else "") + (" (baseline)" if r["baseline"] else "")


def _within(res: list[dict]) -> tuple[list[tuple], list[dict]]:
    """The strata (data x direction x label budget, sorted) and the rows of ``res`` inside them with a finite tau."""
    strata = sorted({_key(r) for r in res if r["direction"] != ALL}, key=str)
    return strata, [r for r in res if r["direction"] != ALL and math.isfinite(r["tau_error"])]


def _taus(within: list[dict], measure: str) -> list[float]:
    return [r["tau_error"] for r in within if r["measure"] == measure]


def _mean(v: list[float]) -> float:
    return sum(v) / len(v) if v else math.nan


def render(res: list[dict], rows: list[dict], command: str) -> str:
    from cmkd_bounds.app.tables import markdown

    def ci(r, t):
        return f"{r[f'tau_{t}']:+.2f} [{r[f'tau_{t}_lo']:+.2f}, {r[f'tau_{t}_hi']:+.2f}]" \
            if math.isfinite(r[f"tau_{t}"]) else "-"

    single = _single_data(res)
    varying = [h for h in HYPER if len({str(r.get(h)) for r in rows}) > 1]
    fewest = min((r["runs"] for r in res), default=0)
    few = (f" **Few runs**: the smallest group has {fewest}; a bootstrap interval over fewer than {FEW_RUNS} runs "
           "says little, so read its intervals as descriptive." if fewest < FEW_RUNS else "")
    lines = ["# Does the bound predict the error?", "",
             f"Written by `{command}` over {len(rows)} runs. Kendall's tau (tau-b) between each "
             "measure and the student's test error (and test CE), with a 95 % bootstrap interval over runs; Psi is the "
             "granulated coefficient of Jiang et al. (ICLR 2020) over the hyperparameters that vary "
             f"({', '.join(varying) or 'none here'}); sign-error (Dziugaite et al., NeurIPS 2020) over the pairs of "
             "runs that differ in one of them, its mean and its worst value over them (robust; 0.5 is chance). "
             "*label-free*: computable without any student label. Sorted by tau with the error." + (
                 "" if single else f" Runs of different data are never pooled ({len({r['data'] for r in res})} "
                 "datasets).") + few, ""]
    lines += within_strata(res)
    lines += reading(res, rows)
    for key in sorted({_key(r) for r in res}, key=lambda k: (str(k[0]), k[1] == ALL, str(k))):
        rs = sorted([r for r in res if _key(r) == key],
                    key=lambda r: -r["tau_error"] if math.isfinite(r["tau_error"]) else math.inf)
        table = [{"measure": _name(r), "tau with error [95% CI]": ci(r, "error"),
                  "tau with CE [95% CI]": ci(r, "risk"), "Psi": r["psi_error"],
                  "sign-error mean / robust": (f"{r['sign_error']:.2f} / {r['sign_error_robust']:.2f}"
                                               if math.isfinite(r["sign_error"]) else "-")} for r in rs]
        lines += [f"## {_regime(key, single)} ({rs[0]['runs']} runs)", "", markdown(table, digits=2).strip(), ""]
    return "\n".join(lines) + "\n"


def within_strata(res: list[dict]) -> list[str]:
    """One row per measure, one column per stratum: tau with the test error, starred where its 95 % bootstrap interval
    excludes 0; rows by their mean tau over the strata (measures that never vary: no tau, last)."""
    from cmkd_bounds.app.tables import markdown

    strata, within = _within(res)
    if len(strata) < 2:
        return []
    single = _single_data(res)
    by = {(r["measure"], *_key(r)): r for r in within}
    order = sorted(dict.fromkeys(r["measure"] for r in res),
                   key=lambda m: -_mean(_taus(within, m)) if _taus(within, m) else math.inf)
    table = []
    for m in order:
        row = {"measure": _name(next(r for r in res if r["measure"] == m))}
        for k in strata:
            r = by.get((m, *k))
            row[_regime(k, single)] = f"{r['tau_error']:+.2f}{'*' if _excludes_zero(r) else ''}" if r else "-"
        v = _taus(within, m)
        row["mean"] = f"{_mean(v):+.2f}" if v else "- (constant)"
        table.append(row)
    return ["## within each stratum: Kendall tau with the test error", "",
            "A stratum fixes the data, the teaching direction and the label budget, so only the method and its "
            "hyperparameters vary. * : the 95 % bootstrap interval excludes 0. A measure that takes one value over "
            "the runs of a stratum has no tau there ('-').", "", markdown(table).strip(), ""]


def reading(res: list[dict], rows: list[dict]) -> list[str]:
    """The finding in words, every number computed here from the within-stratum taus and the runs."""
    strata, within = _within(res)
    if len(strata) < 2 or not within:
        return []
    free = [r for r in within if r["label_free"] and r["measure"] not in dict(PREDICTORS)]
    out = [f"**Reading** (computed by `correlate`) over {len(strata)} strata."]
    if free:
        free_means = [_mean(_taus(free, m)) for m in dict.fromkeys(r["measure"] for r in free)]
        star = [r for r in free if _excludes_zero(r)]
        out = [f"**Reading** (computed by `correlate`). Over {len(strata)} strata: the label-free measures of the "
               f"bound ({', '.join(dict.fromkeys(r['measure'] for r in free))}) have within-stratum tau from "
               f"{min(r['tau_error'] for r in free):+.2f} to {max(r['tau_error'] for r in free):+.2f} (means per "
               f"measure {min(free_means):+.2f} to {max(free_means):+.2f}); {len(star)} of {len(free)} intervals "
               f"exclude 0, {sum(r['tau_error'] < 0 for r in star)} of them with a negative tau."]
    for m, what in (*PREDICTORS, *READ):
        v = _taus(within, m)
        if v:
            star = sum(_excludes_zero(r) and r["tau_error"] > 0 for r in within if r["measure"] == m)
            out.append(f"- {what} (`{m}`): mean {_mean(v):+.2f}, from {min(v):+.2f} to {max(v):+.2f}; "
                       f"{star} of {len(v)} strata with an interval above 0.")
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
        overall = [r for r in res if r["direction"] == ALL and math.isfinite(r["tau_error"])]
        measures = list(dict.fromkeys(r["measure"] for r in sorted(overall, key=lambda r: -abs(r["tau_error"]))))[:4]
    strata = sorted({_key(r) for r in rows}, key=str)
    single = len({k[0] for k in strata}) == 1
    methods = sorted({str(r["method"]) for r in rows})
    colors = dict(zip(methods, ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b2", "#937860", "#da8bc3",
                                "#8c8c8c", "#ccb974", "#64b5cd")))
    fig, axes = plt.subplots(len(strata), max(1, len(measures)), figsize=(3.3 * max(1, len(measures)),
                                                                          2.8 * len(strata)), squeeze=False)
    for i, st in enumerate(strata):
        rs = [r for r in rows if _key(r) == st]
        for j, m in enumerate(measures):
            ax = axes[i][j]
            for meth in methods:
                mr = [r for r in rs if str(r["method"]) == meth and r.get(m) is not None]
                ax.scatter([r[m] for r in mr], [r["observed_error01"] for r in mr], s=10,
                           color=colors.get(meth, "k"), label=meth)
            t = kendall([r.get(m) for r in rs], [r["observed_error01"] for r in rs])
            ax.set_title(f"{m}\n{_regime(st, single)}: tau {t:+.2f}", fontsize=7)
            ax.tick_params(labelsize=6)
            if j == 0:
                ax.set_ylabel("test error", fontsize=7)
    axes[0][-1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1, 1))
    fig.tight_layout()
    return figures.png(fig)
