"""Issue 18: what "certified" may claim. A split that chose the model, sample quantities, and two certificates
read together; each world below made the previous release claim more than it could, and each test fails on it."""

import json
import math

import numpy as np
import pytest
from scipy.stats import multinomial

from cmkd_bounds import concentration as cc
from cmkd_bounds.app.cli import main
from cmkd_bounds.features import FeatureSet, entropy_of, logits
from cmkd_bounds.theorem import assemble
from training.config import TrainConfig
from training.loop import train

QUICK = dict(rate_repeats=2, rate_sizes=(4, 8))
SYN = dict(dataset="synthetic", feat_dim=8, batch_size=32, quiet=True)


# ----------------------------------------------------------------------------- 1. the split that chose the model
def test_selecting_on_the_evaluation_split_needs_a_union_bound():
    """E checkpoints with the same true error, the best chosen on the n items that then certify it: at eta the
    Clopper-Pearson limit of the chosen one covers the truth far less often than 1 - eta; at eta / E it covers."""
    rng = np.random.default_rng(0)
    n, p, eta, E, reps = 450, 0.05, 0.05, 20, 4000
    chosen = rng.binomial(n, p, size=(reps, E)).min(1)  # independent errors: the worst case for the union bound
    cover = {level: np.mean([cc.clopper_pearson(int(k), n, level) >= p for k in chosen]) for level in (eta, eta / E)}
    assert cover[eta] < 0.80  # the naive certificate: about 0.6-0.7 here
    assert cover[eta / E] >= 1 - eta


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    root = tmp_path_factory.mktemp("sel")
    train(TrainConfig(role="teacher", epochs=2, out=str(root / "teacher"), **SYN))
    train(TrainConfig(method="ce", teacher=str(root / "teacher" / "best.safetensors"), epochs=3,
                      out=str(root / "student"), **SYN))
    return root / "student" / "best.safetensors"


def test_evaluate_on_the_validation_split_pays_for_the_selection(student, tmp_path):
    """Through the CLI: on --split val every certificate is computed at eta / 3 (three epochs compared there) and the
    assumptions say so; on the test split nothing was chosen, and the shipped splits are class-stratified."""
    reports = {}
    for split in ("val", "test"):
        out = tmp_path / split
        assert main(["evaluate", "--student", str(student), "--split", split, "--out", str(out), "--quiet"]) == 0
        reports[split] = json.loads((out / "bound.json").read_text())
    val, test = reports["val"], reports["test"]
    assert val["settings"]["selected_among"] == 3 and test["settings"]["selected_among"] == 1
    assert val["settings"]["sampling"] == test["settings"]["sampling"] == "stratified"
    assert val["source"]["settings"]["selected_among"] == 1  # what was asked for is kept apart from what was used
    o = val["observed"]
    for name, expected in (("held_out_kl", cc.kl_upper(o["risk_clipped"], o["n_student"], 0.05 / 3, 5.0)),
                           ("error01_clopper_pearson", cc.clopper_pearson(o["errors"], o["n_student"], 0.05 / 3))):
        assert val["bounds"][name]["value"] == pytest.approx(expected, rel=1e-12)
    assert any("chosen among 3 checkpoints" in a for a in val["assumptions"])
    assert any("val split" in a and "best epoch was chosen" in a for a in val["assumptions"])
    assert not any("chosen among" in a for a in test["assumptions"])
    ot = test["observed"]
    assert test["bounds"]["held_out_kl"]["value"] == pytest.approx(cc.kl_upper(ot["risk_clipped"], ot["n_student"],
                                                                               0.05, 5.0), rel=1e-12)


def test_design_options_belong_to_bundles(student, tmp_path, capsys):
    assert main(["evaluate", "--student", str(student), "--selected-among", "4", "--out", str(tmp_path / "x")]) == 2
    assert "follows from the split" in capsys.readouterr().err


# ----------------------------------------------------------------------------- 2. transports are sample quantities
def _rare_mode_world(n, rng, rare):
    """Five classes; almost every item sits where the teacher head is sure (class 0), a rare student mode sits at the
    origin, where every class is equally likely: the teacher's expected loss is log 5 there."""
    C = 5
    mu = 3.0 * np.c_[np.cos(2 * np.pi * np.arange(C) / C), np.sin(2 * np.pi * np.arange(C) / C)]
    z, y = mu[0] + 0.01 * rng.normal(size=(n, 2)), np.zeros(n, int)
    r = rng.random(n) < rare
    z[r] = 0.01 * rng.normal(size=(r.sum(), 2))
    y[r] = rng.integers(0, C, r.sum())
    return z, y, 1.5 * mu, np.zeros(C)


def test_transports_between_samples_can_undershoot_the_population_transport():
    """L W1(P^_S, P^_T) bounds the empirical transport E^_S f - E^_T f exactly, but compared with the population
    transport E_{P_S} f - E_{P_T} f it falls below in a sizeable fraction of draws (C = 5, n = m = 20, a student mode
    of mass 0.1): it is a sample quantity (kind "sample"), never a certificate."""
    rng = np.random.default_rng(0)
    zT, _, W, b = _rare_mode_world(200_000, rng, 0.0)
    zS, _, _, _ = _rare_mode_world(200_000, rng, 0.1)
    population = entropy_of(logits(zS, W, b)).mean() - entropy_of(logits(zT, W, b)).mean()
    under, draws = {}, 40
    for k in range(draws):
        r = np.random.default_rng(k + 1)
        zt, yt, _, _ = _rare_mode_world(20, r, 0.0)
        zs, ys, _, _ = _rare_mode_world(20, r, 0.1)
        rep = assemble(FeatureSet(zt, yt, zs, ys, W, b, W, b), posterior="raw", **QUICK)
        for t in rep.transports:
            under[t.name] = under.get(t.name, 0) + (t.value < population)
            assert t.kind == "sample" and rep.term(f"transport_{t.name}").kind == "sample"
        assert rep.term("tau_logit_l2").kind == "certified"  # the constant of a fixed head stays certified
    assert under["logit_l2"] / draws >= 0.25  # measured 0.40
    assert under["feature"] / draws > 0


# ----------------------------------------------------------------------------- 3. two certificates read together
def _union_failure(a, b, n, eta, upper):
    """Exact probability that the clipped-risk certificate ``upper`` or Clopper-Pearson fails, when each item is an
    error of loss ln 2 (probability a), a right answer of clipped loss 5 (probability b; with C = 200 classes the
    argmax can hold probability e^-5), or a right answer of loss 0."""
    R, fail = a * math.log(2) + b * 5.0, 0.0
    for kE in range(n + 1):
        for kH in range(n + 1 - kE):
            p = multinomial.pmf([kE, kH, n - kE - kH], n, [a, b, 1 - a - b])
            losses = np.r_[np.full(kE, math.log(2)), np.full(kH, 5.0), np.zeros(n - kE - kH)]
            fail += p * (upper(losses, eta) < R or cc.clopper_pearson(kE, n, eta) < a)
    return fail


def test_two_certificates_hold_together_only_at_one_minus_two_eta():
    """In this world (n = 10) the kl certificate and Clopper-Pearson, each at 1 - eta, fail together-or-apart with
    probability 0.0565 > eta: a sentence asserting both at 1 - eta is false. The union bound (1 - 2 eta) holds, for
    the kl pair and for the betting pair the summary now reads."""
    eta = 0.05
    kl = _union_failure(0.26, 0.375, 10, eta, lambda x, e: cc.kl_upper(x.mean(), len(x), e, 5.0))
    assert eta < kl <= 2 * eta and kl == pytest.approx(0.0565, abs=5e-4)
    bet = _union_failure(0.26, 0.375, 10, eta, lambda x, e: cc.betting_upper(x, e, 5.0))
    assert bet <= 2 * eta


def test_the_summary_reads_each_certificate_on_its_own():
    rng = np.random.default_rng(3)
    zt, yt, W, b = _rare_mode_world(60, rng, 0.2)
    zs, ys, _, _ = _rare_mode_world(60, rng, 0.2)
    rep = assemble(FeatureSet(zt, yt, zs, ys, W, b, W, b), **QUICK)
    assert "Each with probability at least 0.95 (both together with probability at least 0.90)" in rep.summary
    assert "With probability at least 0.95, its" not in rep.summary


# ----------------------------------------------------------------------------- 4. small things
def test_transfer_certificates_are_never_below_the_held_out_one_not_even_by_rounding():
    rng = np.random.default_rng(5)
    for _ in range(5):
        zt, yt, W, b = _rare_mode_world(50, rng, 0.3)
        rep = assemble(FeatureSet(zt, yt, zt.copy(), yt.copy(), W, b, W, b), posterior="raw", **QUICK)
        held = rep.bounds["held_out_betting"].value
        for k in ("certified_marginal", "certified_class_conditional"):
            assert rep.bounds[k].value >= held


def test_the_closed_form_varentropy_constant_is_rounded_up():
    from scipy.optimize import minimize_scalar

    peak = -minimize_scalar(lambda t: -t / (2 * math.cosh(t / 2)), bounds=(0, 10), method="bounded",
                            options={"xatol": 1e-12}).fun
    assert 0.66274 < peak <= 0.66275
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for f in ("docs/theory.md", "cmkd_bounds/lipschitz.py"):
        text = (root / f).read_text()
        assert "0.66275" in text and "0.6627`" not in text and "0.6627)" not in text, f


def test_the_teachers_temperature_never_enters_a_certificates_random_event():
    """Issue 18 #1, the other splits: the temperature is fitted on the teacher's validation split (where the teacher's
    best epoch was also chosen). It changes f, hence the transfer forms' slacks, but not the held-out certificates,
    and every transfer certificate stays at or above the held-out one whatever the temperature."""
    rng = np.random.default_rng(2)
    zt, yt, W, b = _rare_mode_world(80, rng, 0.3)
    zs, ys, _, _ = _rare_mode_world(80, rng, 0.3)
    reps = [assemble(FeatureSet(zt, yt, zs, ys, W * k, b, W, b), posterior=post, **QUICK)
            for k, post in ((1.0, "raw"), (1.0, "calibrated"), (0.2, "raw"))]
    held = {r.bounds["held_out_betting"].value for r in reps}
    assert len(held) == 1 and len({r.temperature.get("how") for r in reps}) == 2
    for r in reps:
        assert all(r.bounds[k].value >= min(held) for k in ("certified_marginal", "certified_class_conditional"))
