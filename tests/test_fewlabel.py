"""Issue 19: few labels, many unlabelled items. Sampling without replacement, the pool and population certificates
(direct and prediction-powered) under surrogates chosen to hurt, and a few-label evaluation that reads no hidden
label."""

import json
import math

import numpy as np
import pytest
from scipy.stats import hypergeom

from cmkd_bounds import concentration as cc
from cmkd_bounds import names
from cmkd_bounds.app.cli import main
from cmkd_bounds.fewlabel import Pool, atc, cot, draw_labelled, few_label_certificates, pool_routes
from cmkd_bounds.kinds import POOL_CLIPPED_RISK
from training.synthetic import SyntheticWorld


# ----------------------------------------------------------------------------- sampling without replacement
def test_hypergeometric_upper_is_the_exact_limit():
    for k, n, N, eta in ((0, 20, 100, 0.05), (3, 50, 450, 0.05), (10, 30, 60, 0.1), (5, 100, 100, 0.05)):
        M = round(cc.hypergeometric_upper(k, n, N, eta) * N)
        assert hypergeom.cdf(k, N, M, n) > eta  # M is allowed
        assert M == N - (n - k) or hypergeom.cdf(k, N, M + 1, n) <= eta  # and M + 1 is not
    assert cc.hypergeometric_upper(5, 100, 100, 0.05) == 0.05  # a census knows its error exactly
    assert cc.hypergeometric_upper(3, 100, 10**6, 0.05) == pytest.approx(cc.clopper_pearson(3, 100, 0.05), rel=1e-3)


@pytest.mark.parametrize("N,K,law", [(450, 20, "skewed"), (450, 200, "skewed"), (100, 90, "coin"), (50, 10, "coin")])
def test_betting_without_replacement_covers_the_pool_mean(N, K, law):
    rng, eta, reps = np.random.default_rng(0), 0.1, 300
    miss, wor, iid = 0, [], []
    for r in range(reps):
        vals = np.where(rng.random(N) < 0.05, 1.0, 0.02 * rng.random(N)) if law == "skewed" else \
            (rng.random(N) < 0.3).astype(float)
        idx = rng.choice(N, K, replace=False)
        u = cc.betting_upper(vals[idx], eta, population=N, permutations=3, seed=r)
        miss += u < vals.mean()
        wor.append(u), iid.append(cc.betting_upper(vals[idx], eta, permutations=3, seed=r))
    assert miss / reps <= eta + 3 * math.sqrt(eta * (1 - eta) / reps)
    assert np.mean(wor) <= np.mean(iid) + 1e-12  # knowing the pool's size only helps


# ----------------------------------------------------------------------------- certificates under hostile surrogates
def _items(rng, n, C, hostile: str):
    """Clipped losses, errors and surrogates of ``n`` items. ``hostile``: surrogates that say nothing
    (``noise``), or that are confidently wrong: near 0 exactly where the loss is large (``inverted``)."""
    err = rng.random(n) < 0.15
    loss = np.where(err, 2.0 + 3.0 * rng.random(n), 0.05 * rng.random(n))
    g_ce = np.where(err, 0.0, math.log(C)) if hostile == "inverted" else math.log(C) * rng.random(n)
    g_01 = np.where(err, 0.0, 1 - 1 / C) if hostile == "inverted" else (1 - 1 / C) * rng.random(n)
    return loss, err.astype(float), g_ce, g_01


# the hostile surrogate at K = 20 runs by default; the rest with the slow tests (the default run stays under 2 min)
@pytest.mark.parametrize(("K", "hostile"), [(20, "inverted"), pytest.param(20, "noise", marks=pytest.mark.slow),
                                          pytest.param(80, "noise", marks=pytest.mark.slow),
                                          pytest.param(80, "inverted", marks=pytest.mark.slow)])
def test_pool_and_population_certificates_cover_whatever_the_surrogate(hostile, K):
    """Each certificate covers its target in >= 1 - eta of the draws (3 binomial standard errors of slack): the pool's
    own mean for the *_pool ones (the draw is their only randomness), the population's for the lifted ones."""
    rng, eta, C, n, reps = np.random.default_rng(1), 0.1, 10, 200, 120
    truth_loss, truth_err = 0.15 * 3.5 + 0.85 * 0.025, 0.15
    held = {}
    for r in range(reps):
        loss, err, g_ce, g_01 = _items(rng, n, C, hostile)
        lab = draw_labelled(np.arange(n), K, r)
        G = {names.SURROGATE_THEORY_F: math.log(C), names.SURROGATE_STUDENT_ENTROPY: math.log(C),
             names.SURROGATE_TEACHER_CONFIDENCE: 1 - 1 / C, names.SURROGATE_STUDENT_CONFIDENCE: 1 - 1 / C}
        pool = Pool(n=n, labelled=lab, loss=loss[lab], error=err[lab], clip=5.0, ranges=G,
                    surrogates={names.SURROGATE_THEORY_F: g_ce, names.SURROGATE_STUDENT_ENTROPY: g_ce[::-1].copy(),
                                names.SURROGATE_TEACHER_CONFIDENCE: g_01, names.SURROGATE_STUDENT_CONFIDENCE: g_01})
        for t in few_label_certificates(pool, eta, "iid", seed=r):
            ce = "clipped" in t.target
            pooled = t.target == POOL_CLIPPED_RISK or t.target.startswith("pool")
            truth = (loss.mean() if ce else err.mean()) if pooled else (truth_loss if ce else truth_err)
            held.setdefault(t.name, []).append(t.value >= truth - 1e-12)
    slack = 3 * math.sqrt(eta * (1 - eta) / reps)
    low = {k: float(np.mean(v)) for k, v in held.items() if np.mean(v) < 1 - eta - slack}
    assert not low, low
    assert len(held) == 2 * len(names.FEW_LABEL)


def test_routes_are_fixed_and_ppi_needs_its_surrogate():
    pool = Pool(n=10, labelled=np.arange(3), loss=np.zeros(3), error=np.zeros(3), clip=5.0)
    assert set(pool_routes(pool)) == {names.FEW_BETTING, names.FEW_KL, names.FEW01_HYPERGEOMETRIC, names.FEW01_BETTING}
    with pytest.raises(ValueError, match="distinct pool items"):
        Pool(n=3, labelled=np.array([0, 0]), loss=np.zeros(2), error=np.zeros(2))
    with pytest.raises(ValueError, match="labelled items to draw from"):
        draw_labelled(np.arange(5), 6, 0)


def test_label_free_predictors_on_closed_forms():
    logits = np.log(np.array([[0.9, 0.1], [0.6, 0.4]]))
    assert cot(logits, [0.5, 0.5]) == pytest.approx(0.5 * (0.1 + 0.6))  # item 1 -> class 0 (0.1), item 2 -> class 1
    t, pred = atc([0.9, 0.8, 0.7, 0.6], [1, 1, 1, 0], [0.95, 0.64, 0.55])  # threshold between 0.6 and 0.7
    assert 0.6 < t < 0.7 and pred == pytest.approx(2 / 3)


# ----------------------------------------------------------------------------- through the command line
@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    w = SyntheticWorld(num_classes=3, feature_shift=0.5, seed=3)
    fs = w.feature_set(200, 300, np.random.default_rng(0))
    path = tmp_path_factory.mktemp("few") / "b.npz"
    np.savez(path, **{k: v for k, v in fs.__dict__.items() if v is not None})
    return path


def _certificates(folder):
    d = json.loads((folder / "bound.json").read_text())
    return d, {k: b["value"] for k, b in d["bounds"].items()}


def test_few_label_evaluation_reads_no_hidden_label(bundle, tmp_path):
    """--labelled 40 keeps 40 labels; scrambling every other label changes no certificate (only the hidden pool
    record that is shown to compare)."""
    assert main(["evaluate", "--features", str(bundle), "--labelled", "40", "--out", str(tmp_path / "a"),
                 "--quiet"]) == 0
    d, a = _certificates(tmp_path / "a")
    assert d["pool"]["n"] == 300 and d["pool"]["labelled"] == 40 and "drawn uniformly" in d["pool"]["draw"]
    assert d["held_out_certificate"]["form"] == names.FEW_BETTING and d["observed"]["n_student"] == 40
    assert set(names.FEW_LABEL + names.FEW_LABEL_POOL) <= set(a) and names.HELD_OUT_KL not in a
    items = np.load(tmp_path / "a" / "items.npz")
    lab = items["labelled"]
    arrays = dict(np.load(bundle))
    y = arrays["student_y"].copy()
    y[~lab] = (y[~lab] + 1) % 3  # every hidden label changed
    np.savez(tmp_path / "scrambled.npz", **{**arrays, "student_y": y})
    assert main(["evaluate", "--features", str(tmp_path / "scrambled.npz"), "--labelled", "40", "--out",
                 str(tmp_path / "b"), "--quiet"]) == 0
    d2, b = _certificates(tmp_path / "b")
    assert a == b
    assert d2["pool"]["hidden_error01"] != d["pool"]["hidden_error01"]
    assert d["pool"]["hidden_risk_clipped"] <= a[names.pool_form(names.FEW_BETTING)]


def test_unlabelled_items_in_a_bundle_and_an_index_file(bundle, tmp_path, capsys):
    arrays = dict(np.load(bundle))
    y = arrays["student_y"].copy()
    keep = np.arange(0, 300, 10)
    y[np.setdiff1d(np.arange(300), keep)] = -1
    np.savez(tmp_path / "partial.npz", **{**arrays, "student_y": y})
    assert main(["evaluate", "--features", str(tmp_path / "partial.npz"), "--out", str(tmp_path / "p"), "--quiet"]) == 0
    d, _ = _certificates(tmp_path / "p")
    assert d["pool"]["labelled"] == 30 and "labelled in the data" in d["pool"]["draw"]
    assert "hidden_error01" not in d["pool"]  # the tool never saw the other labels
    np.save(tmp_path / "idx.npy", keep)
    assert main(["evaluate", "--features", str(bundle), "--labelled-index", str(tmp_path / "idx.npy"), "--out",
                 str(tmp_path / "i"), "--quiet"]) == 0
    d2, _ = _certificates(tmp_path / "i")
    assert d2["pool"]["labelled"] == 30 and d2["source"]["labelled_index_sha256"]
    assert _certificates(tmp_path / "i")[1] == _certificates(tmp_path / "p")[1]  # the same labelled items
    for args, msg in ((["--labelled", "0"], "keep at least one label"),
                      (["--labelled", "301"], "labelled items to draw"),
                      (["--labelled", "5", "--labelled-index", str(tmp_path / "idx.npy")], "not both")):
        assert main(["evaluate", "--features", str(bundle), *args, "--out", str(tmp_path / "x"), "--quiet"]) == 2
        assert msg in capsys.readouterr().err
