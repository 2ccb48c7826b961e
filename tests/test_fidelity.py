"""Fidelity to the authors' UCMKD step (Duckduck-05/UCMKD, ``cremad/utils/helper.py``,
``train_network_distill_unpair_bilevel``; RAVDESS variant in ``ravdess/utils/helper.py``).

``official_step`` below is a compact transcription of the official per-minibatch step, written for
this test from the official code's logic; every adaptation is marked ``ADAPTED``. It runs beside
:class:`training.methods.UCMKD` from identical weights on identical seeded batches, and the two must
end with the same parameters and BatchNorm buffers after 20 outer SGD steps (lr 1e-2, momentum 0.9,
as the official CREMA-D runs), for the cosine and l2 costs and n1 = n2 = 1 and 2. The comparison is
shown to fail when our step departs from the official one (envelope FA gradient, one BatchNorm
update per step, no label smoothing against the RAVDESS variant).
"""

import copy
import math
import warnings

import numpy as np
import ot
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from training.alignment import feature_alignment, sinkhorn, transport_cost
from training.config import TrainConfig
from training.methods import Batch, _batchnorms, _bn_repeat, _bn_snapshot, make_method

STEPS, BATCH, K, C = 20, 32, 8, 4


class TinyBN(nn.Module):
    """A student with the :class:`training.models.Model` interface and one BatchNorm layer.

    The linear layer in front of BatchNorm has no bias: its FA gradient would be zero up to
    rounding (BatchNorm removes it), and the first step of a fresh AdamW (``~ lr sign(g)``) turns
    rounding noise into a displacement of the running mean of size ``inner_lr``.
    """

    def __init__(self, d=6):
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(d, 16, bias=False), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, K))
        self.classifier = nn.Linear(K, C)

    def encode(self, x, lengths=None):
        return self.encoder(x)

    def head(self, z):
        return self.classifier(z)

    def forward(self, x, lengths=None, part="all"):
        if part == "encode":
            return self.encode(x)
        if part == "head":
            return self.head(x)
        return self.head(self.encode(x))

    def head_params(self):
        return [n for n, _ in self.named_parameters() if n.startswith("classifier.")]


def pairwise_ot_cost(stu_f, tea_f, metric):
    if metric == "l2":
        return torch.cdist(stu_f, tea_f, p=2)
    return 1.0 - F.normalize(stu_f, p=2, dim=1) @ F.normalize(tea_f, p=2, dim=1).T


def official_step(net, teacher_fc, optimizer, x, y, tea_f, *, metric, n1, n2, inner_lr, inner_wd=0.05,
                  ot_reg=0.1, ot_iter=100, max_norm=5.0, label_smoothing=0.0):
    """One minibatch of the official bi-level step.

    ADAPTED: the official ``net_tmp(x)`` returns ``(logits, feature, maps)``; here ``encode`` gives
    the feature (the unused logits come from a head without buffers, so skipping them changes
    nothing). ADAPTED: the teacher's features ``tea_f`` are given (the official teacher, frozen in
    eval mode, computes them from its modality's batch). ADAPTED: POT runs on ``M.double()``: the
    official float32 call returns NaN gradients for l2 at unit feature scale (tested below).
    ``label_smoothing=0.1`` is the RAVDESS variant (LA's two CEs and the outer CE).
    """
    net_tmp = copy.deepcopy(net)
    net_tmp.train()
    optimizer_tmp = torch.optim.AdamW(list(net_tmp.parameters()), lr=inner_lr, weight_decay=inner_wd)
    for _ in range(n1):  # FA on the copy: only the encoder gets gradients, so only it moves
        optimizer_tmp.zero_grad()
        stu_f = net_tmp.encode(x)
        bs = stu_f.size(0)
        a = torch.ones(bs, dtype=torch.float64) / bs
        b = torch.ones(tea_f.size(0), dtype=torch.float64) / tea_f.size(0)
        M = torch.clamp(pairwise_ot_cost(stu_f, tea_f, metric), min=0.0)
        fa = torch.mean(ot.sinkhorn2(a, b, M.double(), reg=ot_reg, numItermax=ot_iter))
        fa.backward()
        optimizer_tmp.step()
    cross_entropy = nn.CrossEntropyLoss(reduction="none", label_smoothing=label_smoothing)
    for _ in range(n2):  # LA on the copy's head, features detached (the encoder forward updates BatchNorm)
        optimizer_tmp.zero_grad()
        stu_f = net_tmp.encode(x)
        outputs_tmp = net_tmp.head(stu_f.detach())
        with torch.no_grad():
            stu_latent_2_tea = teacher_fc(stu_f)
        kappa = F.softmax(stu_latent_2_tea, dim=-1).gather(1, y.unsqueeze(1)).squeeze(1)
        la = (cross_entropy(outputs_tmp, y) - kappa * cross_entropy(stu_latent_2_tea, y)).mean()
        la.backward()
        optimizer_tmp.step()
    ce = F.cross_entropy(net_tmp(x), y, label_smoothing=label_smoothing)  # outer CE at the copy
    net_tmp.zero_grad()
    ce.backward()
    optimizer.zero_grad()
    for real_p, tmp_p in zip(net.parameters(), net_tmp.parameters()):
        if tmp_p.grad is not None:
            real_p.grad = tmp_p.grad.clone()
    torch.nn.utils.clip_grad_norm_(net.parameters(), max_norm=max_norm)
    optimizer.step()
    with torch.no_grad():  # running statistics of the copy go back to the student
        for real_b, tmp_b in zip(net.buffers(), net_tmp.buffers()):
            real_b.data.copy_(tmp_b.data)


def race(cost, n, inner_lr, official_ls=0.0, **ours):
    """Both steps from the same weights on the same batches; max abs differences after ``STEPS``."""
    torch.manual_seed(0)
    official = TinyBN()
    student = copy.deepcopy(official)
    teacher_fc = nn.Linear(K, C).requires_grad_(False)
    g = torch.Generator().manual_seed(1)
    batches = []
    for _ in range(STEPS):
        y = torch.arange(BATCH) % C
        batches.append((torch.randn(BATCH, 6, generator=g) + y[:, None], y,
                        torch.randn(BATCH, K, generator=g) + y[:, None]))
    opt_official = torch.optim.SGD(official.parameters(), lr=1e-2, momentum=0.9)
    opt_ours = torch.optim.SGD(student.parameters(), lr=1e-2, momentum=0.9)
    cfg = TrainConfig(method="ucmkd", teacher="t", cost=cost, reg=0.1, sinkhorn_iters=100, inner_lr=inner_lr,
                      inner_wd=0.05, n1=n, n2=n, grad_clip=5.0, steer_every=0, **ours).validate()
    method = make_method(cfg, student, opt_ours, teacher_head=teacher_fc)
    official.train()
    student.train()
    for x, y, zt in batches:
        official_step(official, teacher_fc, opt_official, x, y, zt, metric=cost, n1=n, n2=n, inner_lr=inner_lr,
                      label_smoothing=official_ls)
        method.step(Batch(x=x, y=y, zt=zt))
    diff = lambda pairs: max(float((a.detach() - b.detach()).abs().max()) for a, b in pairs)  # noqa: E731
    bufs = list(zip(official.buffers(), student.buffers()))
    return {"params": diff(zip(official.parameters(), student.parameters())),
            "running": diff((a, b) for a, b in bufs if a.is_floating_point()),
            "counts": diff((a, b) for a, b in bufs if not a.is_floating_point())}


@pytest.mark.parametrize("inner_lr", [1e-5, 1e-3])
@pytest.mark.parametrize("n", [1, 2])
@pytest.mark.parametrize("cost", ["cosine", "l2"])
def test_ucmkd_step_equals_the_official_transcription(cost, n, inner_lr):
    d = race(cost, n, inner_lr)
    assert d["params"] <= 1e-6 and d["running"] <= 1e-6 and d["counts"] == 0, d


def test_the_equivalence_fails_for_the_envelope_gradient_and_a_single_bn_update():
    env = race("cosine", 1, 1e-3, fa_grad="envelope")
    assert env["params"] > 1e-4 and env["running"] > 1e-4, env
    env_official_lr = race("l2", 1, 1e-5, fa_grad="envelope")
    assert env_official_lr["params"] > 1e-6 and env_official_lr["running"] > 1e-5, env_official_lr
    once = race("l2", 2, 1e-5, bn_updates="once")
    assert once["running"] > 1e-2 and once["counts"] == (2 + 2) * STEPS, once  # n1 + n2 + 1 updates a step vs 1


def test_label_smoothing_reproduces_the_ravdess_variant():
    assert race("cosine", 1, 1e-3, official_ls=0.1, label_smoothing=0.1)["params"] <= 1e-6
    assert race("cosine", 1, 1e-3, official_ls=0.1)["params"] > 1e-3


def _pot_value(C, eps=0.1, iters=100, method="sinkhorn"):
    n, m = C.shape
    return ot.sinkhorn2(torch.full((n,), 1 / n, dtype=C.dtype), torch.full((m,), 1 / m, dtype=C.dtype), C, eps,
                        numItermax=iters, method=method)


def _value_and_grad(fn, C):
    C = C.clone().requires_grad_(True)
    v = fn(C)
    v.backward()
    return float(v.detach()), C.grad


@pytest.mark.parametrize("scale", [0.05, 0.25, 1.0, 3.0])
def test_unrolled_gradient_is_autograd_through_pots_iterations(scale):
    g = torch.Generator().manual_seed(2)
    C = (torch.cdist(torch.randn(40, 16, generator=g), torch.randn(30, 16, generator=g) + 0.3) * scale).double()
    ref_v, ref_g = _value_and_grad(_pot_value, C)
    for twice in (False, True):  # hand-written reverse pass; autograd through recorded iterates (second order)
        v, gr = _value_and_grad(lambda c, t=twice: transport_cost(c, 0.1, twice_differentiable=t), C)
        assert v == pytest.approx(ref_v, rel=1e-12)
        assert float((gr - ref_g).abs().max()) <= 1e-11 * float(ref_g.abs().max())
    # the envelope gradient is the plan, at the same value; it is not the official gradient
    v_env, g_env = _value_and_grad(lambda c: transport_cost(c, 0.1, grad="envelope"), C)
    plan = sinkhorn(C, 0.1)
    assert v_env == transport_cost(C, 0.1).item() and torch.equal(g_env, plan.plan)
    cos = float(F.cosine_similarity(g_env.flatten(), ref_g.flatten(), dim=0))
    assert cos < 0.99


def test_log_domain_takes_over_where_the_kernel_underflows():
    g = torch.Generator().manual_seed(3)
    C = torch.cdist(torch.randn(20, 4, generator=g) * 30, torch.randn(25, 4, generator=g) * 30).double()
    assert (C.max() - C.min()) / 0.1 > 500  # beyond the kernel domain: log-domain iterates, autograd
    ref_v, ref_g = _value_and_grad(lambda c: _pot_value(c, method="sinkhorn_log"), C)
    v, gr = _value_and_grad(lambda c: transport_cost(c, 0.1), C)
    assert sinkhorn(C, 0.1).domain == "log" and math.isfinite(v)
    assert v == pytest.approx(ref_v, rel=1e-9)
    assert float((gr - ref_g).abs().max()) <= 1e-8 * float(ref_g.abs().max())


def test_log_domain_gradient_is_the_same_when_the_half_step_plans_are_recomputed(monkeypatch):
    """Issue 23 #7: the log-domain reverse pass keeps the half-step plans of the forward pass when they fit, and
    recomputes them otherwise; both are the same derivative, equal to autograd through POT's log-domain iterates."""
    from training import alignment

    g = torch.Generator().manual_seed(5)
    C = torch.cdist(torch.randn(30, 8, generator=g) * 50, torch.randn(20, 8, generator=g) * 50).double()
    ref_v, ref_g = _value_and_grad(lambda c: _pot_value(c, method="sinkhorn_log"), C)
    kept_v, kept_g = _value_and_grad(lambda c: transport_cost(c, 0.1), C)
    monkeypatch.setattr(alignment, "LOG_KEEP_BYTES", 0)
    rec_v, rec_g = _value_and_grad(lambda c: transport_cost(c, 0.1), C)
    assert kept_v == rec_v == pytest.approx(ref_v, rel=1e-9)
    assert float((kept_g - rec_g).abs().max()) <= 1e-10 * float(ref_g.abs().max())  # rounding apart
    assert float((kept_g - ref_g).abs().max()) <= 1e-8 * float(ref_g.abs().max())


def test_reused_half_step_buffers_never_overwrite_a_live_solution():
    """The kept half-step plans live in pooled buffers (fresh ones cost page faults): a buffer is handed out again
    only once no solution holds it, so two value-and-gradient graphs alive together keep their own plans and give
    the gradients each would give alone."""
    from training import alignment

    g = torch.Generator().manual_seed(6)
    Cs = [torch.cdist(torch.randn(30, 8, generator=g) * 50, torch.randn(20, 8, generator=g) * 50).double()
          for _ in range(3)]
    alone = [_value_and_grad(lambda c: transport_cost(c, 0.1), C)[1] for C in Cs]
    leaves = [C.clone().requires_grad_(True) for C in Cs]
    values = [transport_cost(c, 0.1) for c in leaves]  # three graphs alive at once, each holding its plans
    for v, c, ref in zip(values, leaves, alone):
        (gr,) = torch.autograd.grad(v, c)
        assert torch.equal(gr, ref)
    del values, v  # an output holds its graph's solution (and its buffer) while it lives
    s1 = alignment._solve(Cs[0], 0.1, 100, alignment.STOP_THR, alignment.CHECK_EVERY, keep=True)
    s2 = alignment._solve(Cs[1], 0.1, 100, alignment.STOP_THR, alignment.CHECK_EVERY, keep=True)
    assert not np.shares_memory(s1.Pi, s2.Pi) and not np.shares_memory(s1.Pi, s1.Xi)
    freed = id(s1.Pi.base)  # the id only: a reference would keep the buffer held
    del s1
    s3 = alignment._solve(Cs[2], 0.1, 100, alignment.STOP_THR, alignment.CHECK_EVERY, keep=True)
    assert id(s3.Pi.base) == freed and not np.shares_memory(s2.Pi, s3.Pi)  # the freed buffer, not the held one


def test_flushing_subnormals_in_the_reverse_pass_changes_nothing_and_is_undone():
    from training import alignment

    def flushing():
        return float(np.multiply(np.float64(1e-310), 1.0)) == 0.0

    g = torch.Generator().manual_seed(7)
    C = torch.cdist(torch.randn(40, 8, generator=g) * 60, torch.randn(30, 8, generator=g) * 60).double()
    s = alignment._solve(C, 0.1, 100, alignment.STOP_THR, alignment.CHECK_EVERY, keep=True)
    assert isinstance(s, alignment._LogSolution) and not flushing()
    plain = alignment._log_backward_flushed(s, 0.1)  # called directly: subnormals computed in full
    assert np.array_equal(alignment._log_backward(s, 0.1), plain)
    assert not flushing()  # the mode found is restored
    with alignment._subnormals_flushed():
        assert flushing() or not torch.set_flush_denormal(False)  # (a CPU without the mode: nothing to test)


@pytest.mark.parametrize("dim", [16, 64])
def test_float32_official_l2_gradient_breaks_ours_is_finite_and_exact(dim):
    """Unit-scale features: ``exp(-C / 0.1)`` underflows in float32 for part of the matrix (16-d:
    NaN gradients) or all of it (64-d: POT stops at once and the gradient is zero)."""
    g = torch.Generator().manual_seed(4)
    zs, zt = torch.randn(64, dim, generator=g), torch.randn(64, dim, generator=g)
    zs32 = zs.clone().requires_grad_(True)
    a = torch.full((64,), 1 / 64)
    with warnings.catch_warnings():  # 64-d: "numerical errors at iteration 0"
        warnings.simplefilter("ignore")
        ot.sinkhorn2(a, a, torch.cdist(zs32, zt), reg=0.1, numItermax=100).backward()
    broken = torch.isnan(zs32.grad).any() if dim == 16 else float(zs32.grad.abs().max()) < 1e-30
    assert broken  # the official float32 path
    ours = zs.clone().requires_grad_(True)
    feature_alignment(ours, zt, "l2").backward()
    ref = zs.clone().requires_grad_(True)
    _pot_value(torch.cdist(ref, zt).double()).backward()  # the same cost matrix, POT in float64
    assert torch.isfinite(ours.grad).all() and float(ours.grad.abs().max()) > 1e-4
    assert torch.allclose(ours.grad, ref.grad, rtol=1e-5, atol=1e-9)


def test_second_order_gradient_matches_finite_differences_and_first_order_does_not():
    torch.manual_seed(0)
    net = TinyBN().double().train()
    teacher_fc = nn.Linear(K, C).double().requires_grad_(False)
    g = torch.Generator().manual_seed(1)
    y = torch.arange(BATCH) % C
    b = Batch(x=(torch.randn(BATCH, 6, generator=g) + y[:, None]).double(), y=y,
              zt=(torch.randn(BATCH, K, generator=g) + y[:, None]).double())

    def step(order, model):  # the outer loss and gradient, the model left unchanged (SGD lr 0, no clip)
        cfg = TrainConfig(method="ucmkd", teacher="t", steer_every=0, inner_lr=1e-1, bilevel=order, grad_clip=1e9,
                          cost="cosine", n1=2, n2=2)
        m = make_method(cfg, model, torch.optim.SGD(model.parameters(), lr=0.0), teacher_head=teacher_fc)
        loss = m.step(b)["loss"]
        return loss, torch.cat([p.grad.flatten() for p in model.parameters()])

    g2 = step("second_order", copy.deepcopy(net))[1]
    g1 = step("first_order", copy.deepcopy(net))[1]
    torch.manual_seed(3)
    for _ in range(3):
        d = [torch.randn_like(p) for p in net.parameters()]

        def outer_loss(h, d=d):
            moved = copy.deepcopy(net)
            with torch.no_grad():
                for p, dp in zip(moved.parameters(), d):
                    p.add_(h * dp)
            return step("first_order", moved)[0]

        fd = (outer_loss(1e-6) - outer_loss(-1e-6)) / 2e-6
        D = torch.cat([x.flatten() for x in d])
        assert float(g2 @ D) == pytest.approx(fd, rel=1e-5)
        assert abs(float(g1 @ D) - fd) > 1e-2 * abs(fd)


@pytest.mark.parametrize("momentum", [0.1, None])
def test_bn_repeat_equals_repeated_forwards(momentum):
    torch.manual_seed(0)
    bn = nn.BatchNorm1d(5, momentum=momentum).train()
    bn(torch.randn(16, 5))  # some history, so the count matters for cumulative averaging
    twin = copy.deepcopy(bn)
    x = torch.randn(16, 5) * 3 + 1
    snap = _bn_snapshot(_batchnorms(bn))
    bn(x)
    _bn_repeat(snap, 2)
    for _ in range(3):
        twin(x)
    assert int(bn.num_batches_tracked) == int(twin.num_batches_tracked) == 4
    np.testing.assert_allclose(bn.running_mean, twin.running_mean, rtol=0, atol=1e-6)
    np.testing.assert_allclose(bn.running_var, twin.running_var, rtol=0, atol=1e-6)


def test_reverse_pass_falls_back_to_log_domain_autograd_when_not_finite(monkeypatch):
    import training.alignment as al

    g = torch.Generator().manual_seed(5)
    C = torch.cdist(torch.randn(12, 3, generator=g), torch.randn(9, 3, generator=g)).double()
    _, ref = _value_and_grad(_pot_value, C)
    monkeypatch.setattr(al, "_kernel_backward", lambda *a: np.full(C.shape, np.inf))
    _, gr = _value_and_grad(lambda c: transport_cost(c, 0.1), C)
    assert float((gr - ref).abs().max()) <= 1e-11 * float(ref.abs().max())


def test_new_options_are_validated():
    base = dict(teacher="t")
    for bad in (dict(fa_grad="implicit"), dict(bn_updates="twice"), dict(bilevel="third_order"),
                dict(label_smoothing=1.0), dict(method="joint", label_smoothing=0.1),
                dict(method="feature_kd", bilevel="second_order")):
        with pytest.raises(ValueError):
            TrainConfig(**base, **bad).validate()
    cfg = TrainConfig(**base).validate()
    assert (cfg.fa_grad, cfg.bn_updates, cfg.label_smoothing, cfg.bilevel) == ("unrolled", "official", 0.0,
                                                                               "first_order")
    TrainConfig(role="teacher", label_smoothing=0.1).validate()  # a teacher config derived from a student's
