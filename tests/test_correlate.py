"""`correlate` on families of runs whose order is known (issue 13)."""

import math

import numpy as np
import pytest

from cmkd_bounds.app import correlate as co
from cmkd_bounds.app.cli import main
from cmkd_bounds.app.tables import csv_text


def family(n=40, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        err = float(rng.uniform(0.01, 0.5))
        rows.append({"run": f"r{i}", "direction": "image->audio", "labels_per_class": [0, 10][i % 2],
                     "method": ["ce", "ucmkd"][i % 4 // 2], "lambda_fa": 0.1, "inner_lr": [1e-5, 1e-2][i % 8 // 4],
                     "n1": 1, "seed": i // 8, "observed_error01": err, "observed_risk": 2 * err,
                     "monotone": math.exp(err) + 1.0, "shuffled": float(rng.uniform()), "reversed": -err})
    return rows


def test_a_monotone_measure_gets_tau_one_and_a_shuffled_one_near_zero():
    res = {(r["measure"], r["direction"], r["labels_per_class"]): r for r in co.correlate_rows(family(), n_boot=200)}
    mono, shuf, rev = (res[(m, "all", "all")] for m in ("monotone", "shuffled", "reversed"))
    assert mono["tau_error"] == pytest.approx(1.0) and mono["tau_risk"] == pytest.approx(1.0)
    assert mono["tau_error_lo"] == pytest.approx(1.0)
    assert rev["tau_error"] == pytest.approx(-1.0)
    assert abs(shuf["tau_error"]) < 0.3 and shuf["tau_error_lo"] < 0 < shuf["tau_error_hi"]
    assert mono["psi_error"] == pytest.approx(1.0) and set(mono) >= {"psi_method", "psi_inner_lr"}
    assert res[("monotone", "image->audio", 10)]["runs"] == 20


def test_granulated_psi_varies_one_hyperparameter_at_a_time():
    rows = [{"method": m, "lambda_fa": 0.1, "inner_lr": lr, "n1": 1, "seed": s,
             "err": (0.1 if m == "ce" else 0.2) + s * 0.001, "q": (1.0 if m == "ce" else 2.0) - lr}
            for m in ("ce", "ucmkd") for lr in (0.0, 0.5) for s in range(3)]
    g = co.granulated(rows, "q", "err")
    assert g["method"] == pytest.approx(1.0)  # within every (lr, seed) group, q orders the methods as err does
    assert math.isnan(co.kendall([1, 1, 1], [1, 2, 3]))


def test_correlate_command_writes_table_and_figure(tmp_path, capsys):
    (tmp_path / "summary.csv").write_text(csv_text(family()))
    assert main(["correlate", str(tmp_path), "--bootstrap", "100"]) == 0
    md = (tmp_path / "correlation.md").read_text()
    assert "| monotone | +1.00 [+1.00, +1.00]" in md
    # the overview: one column per stratum, starred where the interval excludes 0, rows by mean tau
    overview = md.split("## within each stratum")[1].split("\n## ")[0]
    lines = [ln for ln in overview.splitlines() if ln.startswith("| ")]
    assert lines[0].startswith("| measure | image->audio, all labels | image->audio, 10 labels/class | mean")
    assert lines[2] == "| monotone | +1.00* | +1.00* | +1.00 |" and lines[-1].startswith("| reversed | -1.00* |")
    assert (tmp_path / "correlation.png").read_bytes()[:4] == b"\x89PNG"
    # the header names the hyperparameters that vary here, and no few-runs warning with 20 runs per stratum
    assert "over the hyperparameters that vary (method, inner_lr)" in md and "Few runs" not in md
    small = tmp_path / "small"
    small.mkdir()
    (small / "summary.csv").write_text(csv_text(family(n=8)))  # 4 runs per stratum
    assert main(["correlate", str(small), "--bootstrap", "50"]) == 0
    assert "**Few runs**: the smallest group has 4" in (small / "correlation.md").read_text()
    assert main(["correlate", str(tmp_path / "missing")]) == 2
    assert "no summary of runs" in capsys.readouterr().err


def test_a_constant_measure_gets_no_tau_and_no_sort_value(tmp_path):
    """Issue 23 #9: a measure that never varies printed a mean tau of -9.00 (an internal sort value)."""
    rows = [{**r, "constant": 0.5} for r in family()]
    (tmp_path / "summary.csv").write_text(csv_text(rows))
    assert main(["correlate", str(tmp_path), "--bootstrap", "50"]) == 0
    md = (tmp_path / "correlation.md").read_text()
    assert "-9.00" not in md and "| constant | - | - | - (constant) |" in md


def test_runs_of_different_data_are_never_pooled():
    """Issue 23 #10: two datasets (here a measure that only tells them apart) form separate strata, and each has its
    own pooled stratum; pooling them made a label-free term look predictive (tau +0.77)."""
    rows = []
    for data, shift in (("avmnist", 0.0), ("views.npz#abc", 0.5)):
        for r in family(20, seed=int(shift * 10)):
            rows.append({**r, "data": data, "observed_error01": r["observed_error01"] + shift,
                         "observed_risk": r["observed_risk"] + shift, "data_only": shift})
    res = co.correlate_rows(rows, n_boot=50)
    pooled = [r for r in res if r["direction"] == "all" and r["measure"] == "data_only"]
    assert {r["data"] for r in pooled} == {"avmnist", "views.npz#abc"} and all(math.isnan(r["tau_error"])
                                                                                for r in pooled)
    assert {r["runs"] for r in pooled} == {20}


def test_sign_error_and_disagreement(tmp_path):
    rows = family(16)
    mono = co.sign_error(rows, "monotone", "observed_error01")
    rev = co.sign_error(rows, "reversed", "observed_error01")
    assert mono == (0.0, 0.0) and rev == (1.0, 1.0)
    # GDE: two seeds of one configuration disagree on 1 of 4 test items; a third configuration has no partner
    base = {"data": "d", "direction": "x", "labels_per_class": 0, "protocol": "p", "method": "ce", "lambda_fa": 0.1,
            "inner_lr": 0.0, "n1": 1}
    runs = [{**base, "run": "a", "seed": 0}, {**base, "run": "b", "seed": 1}, {**base, "run": "c", "seed": 0,
                                                                                "method": "ucmkd"}]
    for name, pred in (("a", [0, 1, 2, 3]), ("b", [0, 1, 2, 0]), ("c", [1, 1, 1, 1])):
        (tmp_path / name).mkdir()
        np.savez(tmp_path / name / "items.npz", prediction=np.array(pred))
    gde = {r["run"]: r[co.GDE] for r in co.add_disagreement(runs, tmp_path)}
    assert gde == {"a": 0.25, "b": 0.25, "c": None}
