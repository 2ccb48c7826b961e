"""The claims ledger (issue 20): its verdict rules on rows whose answer is known, and the committed ledger."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("claims", ROOT / "scripts" / "claims.py")
claims = importlib.util.module_from_spec(spec)
spec.loader.exec_module(claims)


def rows(cells: dict) -> list[dict]:
    """cells: {cell name: (accuracies of a, accuracies of b)}, one accuracy per seed."""
    out = []
    for cell, (a, b) in cells.items():
        for seed, (x, y) in enumerate(zip(a, b)):
            out += [{"cell": cell, "method": "a", "seed": str(seed), "test_acc": str(x)},
                    {"cell": cell, "method": "b", "seed": str(seed), "test_acc": str(y)}]
    return out


CLEAR_WIN = ([0.90, 0.91, 0.92], [0.80, 0.82, 0.81])
NOISE = ([0.80, 0.85, 0.82], [0.82, 0.81, 0.83])  # a ahead by 0.33 points, far from significant
CLEAR_LOSS = (CLEAR_WIN[1], CLEAR_WIN[0])


def verdict(cells, share=0.5):
    return claims.majority_verdict(claims.compare(rows(cells), "a", "b", ("cell",)), share)


def test_compare_pairs_seeds_and_tests():
    (c,) = claims.compare(rows({"x": CLEAR_WIN}), "a", "b", ("cell",))
    assert c["diff"] == pytest.approx(0.1)
    assert c["seeds"] == 3 and c["p"] < 0.05


def test_majority_rules():
    assert verdict({"1": CLEAR_WIN, "2": CLEAR_WIN, "3": NOISE}) == "reproduced"
    assert verdict({"1": NOISE, "2": NOISE, "3": CLEAR_WIN}) == "reproduced"
    assert verdict({"1": CLEAR_WIN, "2": CLEAR_WIN, "3": CLEAR_LOSS}) == "not reproduced"  # one significant loss
    assert verdict({"1": CLEAR_LOSS, "2": CLEAR_LOSS, "3": CLEAR_WIN}) == "refuted"
    assert verdict({"1": NOISE, "2": NOISE}) == "not reproduced"  # ahead everywhere, significantly nowhere
    # "on every task": one significant loss refutes it, one insignificant loss does not reproduce it
    assert verdict({"1": CLEAR_WIN, "2": CLEAR_LOSS}, share=1 - 1e-9) == "refuted"
    assert verdict({"1": CLEAR_WIN, "2": NOISE[::-1]}, share=1 - 1e-9) == "not reproduced"
    assert verdict({"1": CLEAR_WIN, "2": NOISE}, share=1 - 1e-9) == "reproduced"
    assert verdict({}) == "not testable here"


def test_missing_evidence_is_not_testable(tmp_path, monkeypatch):
    monkeypatch.setattr(claims, "REPORTS", tmp_path)
    with pytest.raises(claims.Missing, match="cmkd-bounds robustness"):
        claims.claim_robustness()


def test_the_committed_ledger_names_its_command_and_an_evidence_file_per_claim():
    text = (ROOT / "reports" / "claims.md").read_text()
    assert "python scripts/claims.py" in text
    for f in claims.CLAIMS:
        section = text.split(f"## {f.__doc__}")[1].split("\n## ")[0]
        assert "- evidence: reports/" in section and "- verdict: **" in section


def test_the_committed_ledger_is_current():
    """The ledger reads other reports: regenerating one of them (the bi-level benchmark, say) without rerunning
    scripts/claims.py leaves stale numbers in it."""
    assert (ROOT / "reports" / "claims.md").read_text() == claims.ledger(), \
        "reports/claims.md is stale: run python scripts/claims.py (and python scripts/update_readme.py)"
