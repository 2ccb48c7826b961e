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
    assert main(["correlate", str(tmp_path / "missing")]) == 2
    assert "no summary of runs" in capsys.readouterr().err
