"""The Table 14 analogue (issue 20): which runs it trains, and the arithmetic of its table."""

import math
from pathlib import Path

import pytest

from cmkd_bounds.app.cli import build_parser
from cmkd_bounds.app.robustness import METHODS, PRESETS, compare_to_ce, robustness_configs, robustness_md


def test_configs_cover_every_preset_level_method_and_seed_once():
    teachers, students, cells = robustness_configs(Path("r"), [0, 1], 8, 6)
    # per seed: avmnist clean + 2 presets x 2 levels, synthetic clean + 2 disjoint levels
    assert len(students) == 2 * (5 + 3) * len(METHODS)
    assert len({c.out for c in students}) == len(students)
    # one clean teacher per dataset and seed, plus one per disjoint level (it learns from its own pool)
    assert len(teachers) == 2 * (2 + 2)
    for cfg, cell in zip(students, cells):
        assert cfg.labels_per_class == 0 and cfg.role == "student"
        _, field, values = PRESETS.get(cell["preset"], (None, None, None))
        if cell["level"] == "clean":
            assert (cfg.imbalance, cfg.domain_shift, cfg.disjoint) == (0, 0, 0)
        else:
            assert getattr(cfg, field) == values[cell["level"] == "hard"]
        if cfg.disjoint:
            assert f"disjoint{cfg.disjoint:g}/teacher" in cfg.teacher
        else:
            assert cfg.teacher.endswith(f"seed{cfg.seed}/teacher/best.safetensors")
        assert cfg.protocol == ("class_resample" if cfg.method in ("ce", "feature_kd", "ucmkd") else "permutation")
    assert {t.disjoint for t in teachers} == {0.0, 0.5, 0.3}


def _rows(ce, uc):
    rows = []
    for seed, (a, b) in enumerate(zip(ce, uc)):
        for m, acc in (("ce", a), ("ucmkd", b)):
            rows.append({"dataset": "avmnist", "preset": "clean", "level": "clean", "setting": "-", "method": m,
                         "seed": seed, "test_acc": acc})
            rows.append({"dataset": "avmnist", "preset": "label imbalance", "level": "hard", "setting": "imbalance 50",
                         "method": m, "seed": seed, "test_acc": acc - 0.1 * (m == "ce")})
    return rows


def test_compare_to_ce_is_the_paired_difference_and_its_t_test():
    rows = _rows([0.80, 0.82, 0.84], [0.81, 0.85, 0.85])
    c = compare_to_ce(rows, "clean", "clean", "avmnist")
    assert c["mean"] == pytest.approx(0.05 / 3)
    d = [0.01, 0.03, 0.01]
    sd = math.sqrt(sum((x - 0.05 / 3) ** 2 for x in d) / 2)
    assert c["std"] == pytest.approx(sd)
    t = (0.05 / 3) / (sd / math.sqrt(3))  # the paired t statistic, 2 degrees of freedom
    assert c["p"] == pytest.approx(1 - t / math.sqrt(2 + t * t), rel=1e-9)  # two-sided p of Student t with 2 df
    same = compare_to_ce(_rows([0.8, 0.9], [0.8, 0.9]), "clean", "clean", "avmnist")
    assert same["mean"] == 0 and math.isnan(same["p"])


def test_table_names_the_best_method_and_the_drop_to_the_hard_level():
    md = robustness_md(_rows([0.80, 0.82, 0.84], [0.81, 0.85, 0.85]), [0, 1, 2], 8, 6)
    line = next(x for x in md.splitlines() if "imbalance 50" in x and "| hard |" in x)
    assert "| ucmkd |" in line and "+11.67" in line  # 0.1 + 0.05/3 points of 100
    drops = md.split("hard level")[1]
    assert "| -10.00 |" in drops and "| +0.00 |" in drops  # ce lost 10 points, ucmkd none


def test_cli_has_the_command():
    args = build_parser().parse_args(["robustness", "--seeds", "0", "--jobs", "2"])
    assert args.seeds == [0] and args.runs == "runs/robustness" and args.out == "reports/robustness"
