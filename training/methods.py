"""Training methods: small objects with one ``step(batch) -> metrics``.

- ``ce``: cross-entropy only (teachers, and the no-distillation student baseline);
- ``vanilla_kd``: ``(1 - a) CE + a T^2 KL(softmax(t/T) || softmax(s/T))`` on paired items;
- ``feature_kd``: ``CE + lambda_fa FA``;
- ``joint``: ``CE + lambda_fa FA + lambda_la LA`` in one optimiser (the naive ablation);
- ``ucmkd``: the first-order bi-level step of the official code (docs/theory.md, section 9);
- domain adaptation, which carries the teacher's labels to the student through its features
  (:mod:`training.adaptation`): ``deepjdot`` (joint feature-label OT, plan held fixed), ``dann``
  (a domain discriminator behind gradient reversal), ``coral`` (second moments and means),
  ``ot_pseudo`` (OT label propagation to the unlabelled pool at each epoch's start, then CE on the
  pseudo-labels weighted by their confidence); each beside CE on the labelled items, weighted by
  ``lambda_da``.

The UCMKD step never deep-copies the student, yet computes what the official deep-copy step computes
(``tests/test_fidelity.py`` checks it against a transcription). With ``n1 = n2 = 1`` it costs one
forward and backward of the encoder for the FA step, one forward at the displaced parameters (shared
by the LA step, on detached features, and by the outer CE step) and one backward: about 2x a CE step.
The displaced parameters live in a dictionary and the model runs on them through
``torch.func.functional_call``. Each inner step is a step of a fresh AdamW (the official code builds
its inner optimiser anew each minibatch): ``theta <- theta (1 - lr wd) - lr m^/(sqrt v^ + eps)``. The
official step's extra BatchNorm updates (its LA forwards repeat the outer forward's batch statistics)
are replayed arithmetically instead of recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.func import functional_call
from torch.nn import functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from training.adaptation import coral_loss, dann_loss, deepjdot_loss, discriminator, ot_pseudo_labels, reverse_gradient
from training.alignment import _upcast, feature_alignment, label_alignment
from training.config import TrainConfig


@dataclass
class Batch:
    """Labelled student items and what the teacher side shows beside them.

    ``zt``/``tlogits``/``yt``: the frozen teacher's features, logits and labels of each item's partner;
    ``idx``: the items' places in the student's training pool.
    ``fa_*``: a separate batch for the label-free losses (feature alignment, KD's distillation term, the
    adaptation losses) in the few-label regime (every pool item, labelled or not); ``None`` reuses the
    labelled one.
    """

    x: torch.Tensor
    y: torch.Tensor
    lengths: torch.Tensor | None = None
    zt: torch.Tensor | None = None
    tlogits: torch.Tensor | None = None
    yt: torch.Tensor | None = None
    idx: torch.Tensor | None = None
    fa_x: torch.Tensor | None = None
    fa_lengths: torch.Tensor | None = None
    fa_zt: torch.Tensor | None = None
    fa_tlogits: torch.Tensor | None = None
    fa_yt: torch.Tensor | None = None
    fa_idx: torch.Tensor | None = None

    def fa(self):
        if self.fa_x is None:
            return self.x, self.lengths, self.zt
        return self.fa_x, self.fa_lengths, self.fa_zt

    def fa_labels_and_places(self):
        """The teacher labels of the label-free batch's partners, and its items' places in the pool."""
        return (self.yt, self.idx) if self.fa_x is None else (self.fa_yt, self.fa_idx)


class Method:
    name = "ce"

    def __init__(self, cfg: TrainConfig, model, optimizer, teacher_head=None, reduce_grads=None, autocast=None):
        self.cfg, self.model, self.opt = cfg, model, optimizer
        self.teacher_head = teacher_head
        self.reduce_grads = reduce_grads or (lambda params: None)
        self.autocast = autocast or torch.autocast("cpu", enabled=False)
        self.steps = 0

    def _apply(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self._finish()

    def _finish(self) -> None:
        params = [p for p in self.model.parameters() if p.grad is not None]
        self.reduce_grads(params)
        torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        self.opt.step()
        self.steps += 1

    def step(self, b: Batch) -> dict:
        with self.autocast:
            logits = self.model(b.x, b.lengths)
            loss = F.cross_entropy(logits.float(), b.y)
        self._apply(loss)
        return {"loss": loss.item(), "ce": loss.item()}

    def begin_epoch(self, ctx: EpochContext) -> dict:
        """Called before the first step of every epoch (the pseudo-labelling methods refit there); returns
        diagnostics for the epoch's record in ``metrics.jsonl`` (none by default)."""
        return {}

    def state_dict(self) -> dict:
        """What the method keeps across steps besides the model and its optimiser (saved with ``state.pt``)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


@dataclass
class EpochContext:
    """What an epoch's start shows a method: the student's training pool, the places of its labelled items (only
    their labels may be read), the frozen teacher's features and labels of its training items, the epoch and the
    run's seed."""

    pool: object  # training.data.ModalityData
    t_feats: torch.Tensor | None
    t_labels: torch.Tensor | None
    epoch: int
    seed: int
    device: object
    labelled: np.ndarray | None = None  # pool places whose labels training may use (None: every item)


class _Adaptation(Method):
    """CE on the labelled items plus ``lambda_da`` times an adaptation loss on the label-free batch (its features
    ``zf``, logits ``lf``, the partners' teacher features ``zt`` and labels ``yt``, and its pool places)."""

    def adaptation(self, zf, lf, zt, yt, places) -> torch.Tensor:
        raise NotImplementedError

    @property
    def weight(self) -> float:
        return self.cfg.lambda_da

    def step(self, b):
        with self.autocast:
            z = self.model.encode(b.x, b.lengths)
            logits = self.model.head(z).float()
            ce = F.cross_entropy(logits, b.y)
            fx, fl, fzt = b.fa()
            zf, lf = (z, logits) if b.fa_x is None else (lambda e: (e, self.model.head(e).float()))(
                self.model.encode(fx, fl))
        yt, places = b.fa_labels_and_places()
        da = self.adaptation(_upcast(zf), lf, fzt.float(), yt, places)
        loss = ce + self.weight * da
        self._apply(loss)
        return {"loss": loss.item(), "ce": ce.item(), "da": da.item()}


class DeepJDOT(_Adaptation):
    name = "deepjdot"

    def adaptation(self, zf, lf, zt, yt, places):
        return deepjdot_loss(yt, lf, zt, zf, self.cfg.jdot_alpha, self.cfg.jdot_lambda)


class Coral(_Adaptation):
    name = "coral"

    def adaptation(self, zf, lf, zt, yt, places):
        return coral_loss(zt, zf, self.cfg.coral_mean)


class DANN(_Adaptation):
    """The encoder's features pass a gradient-reversal layer (scale ``lambda_da``) into a domain discriminator
    trained by its own AdamW on ``BCE(D(z_T), 0) + BCE(D(z_S), 1)``; the loss enters the student's objective
    unweighted (the reversal carries the weight), so the discriminator learns at full strength."""

    name = "dann"
    weight = 1.0  # the reversal layer carries lambda_da

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        dev = next(self.model.parameters()).device
        torch.manual_seed(self.cfg.seed * 7919 + 13)
        self.disc = discriminator(self.model.spec["feat_dim"], self.cfg.dann_hidden).to(dev)
        self.disc_opt = torch.optim.AdamW(self.disc.parameters(), lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)

    def adaptation(self, zf, lf, zt, yt, places):
        return dann_loss(self.disc(zt), self.disc(reverse_gradient(zf, self.cfg.lambda_da)))

    def step(self, b):
        self.disc_opt.zero_grad(set_to_none=True)
        out = super().step(b)
        params = [p for p in self.disc.parameters() if p.grad is not None]
        self.reduce_grads(params)
        self.disc_opt.step()
        return out

    def state_dict(self):
        return {"disc": self.disc.state_dict(), "disc_opt": self.disc_opt.state_dict()}

    def load_state_dict(self, state):
        if state:
            self.disc.load_state_dict(state["disc"])
            self.disc_opt.load_state_dict(state["disc_opt"])


class OTPseudo(_Adaptation):
    """At the start of every ``pseudo_every``-th epoch, OT label propagation from (a seeded subsample of at most
    ``pseudo_teacher``) teacher training features and labels to the whole student pool, encoded by the current
    model; a labelled item keeps its own label (confidence 1), so only the unlabelled items are pseudo-labelled
    and with all labels the method is CE with weight ``1 + lambda_da``; each step adds
    ``CE(h_S(z_S), argmax q)`` weighted by ``max q`` (the pseudo-label's confidence) on the label-free batch."""

    name = "ot_pseudo"

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.pseudo: torch.Tensor | None = None

    def begin_epoch(self, ctx: EpochContext) -> dict:
        """Refits the pseudo-labels; returns, for the epoch's record, how many items were pseudo-labelled, their mean
        confidence and the share whose pseudo-label is their true class (``pseudo_acc``: a diagnostic read from the
        pool's labels, which the method never trains on for those items; it shows a collapse as it happens)."""
        cfg = self.cfg
        if ctx.epoch % cfg.pseudo_every and self.pseudo is not None:
            return {}
        from training.prepare import predict

        z_s = predict(self.model, ctx.pool, ctx.device, features=True).double().numpy()
        self.model.train()
        rng = np.random.default_rng([ctx.seed, ctx.epoch, 23])
        m = len(ctx.t_labels)
        keep = np.sort(rng.choice(m, min(m, cfg.pseudo_teacher), replace=False))
        q = ot_pseudo_labels(ctx.t_feats[keep].double().numpy(), ctx.t_labels[keep].numpy(), z_s,
                             self.model.spec["num_classes"], cfg.pseudo_reg_e, cfg.pseudo_reg_cl, cfg.pseudo_iters)
        lab = np.arange(len(q)) if ctx.labelled is None else np.asarray(ctx.labelled)
        y = ctx.pool.y.numpy()
        q[lab] = np.eye(q.shape[1])[y[lab]]
        self.pseudo = torch.as_tensor(q, dtype=torch.float32)
        rest = np.setdiff1d(np.arange(len(q)), lab)
        if not len(rest):
            return {"pseudo_items": 0}
        return {"pseudo_items": int(len(rest)), "pseudo_conf": float(q[rest].max(1).mean()),
                "pseudo_acc": float((q[rest].argmax(1) == y[rest]).mean())}

    def adaptation(self, zf, lf, zt, yt, places):
        q = self.pseudo[places.cpu()].to(lf.device)
        conf, hard = q.max(1)
        return (conf * F.cross_entropy(lf, hard, reduction="none")).mean()

    def state_dict(self):
        return {} if self.pseudo is None else {"pseudo": self.pseudo}

    def load_state_dict(self, state):
        if state and "pseudo" in state:
            self.pseudo = state["pseudo"]


class VanillaKD(Method):
    name = "vanilla_kd"

    def step(self, b):
        """``(1 - alpha) CE + alpha T^2 KL(teacher || student)`` at temperature ``T``; with few labels the
        distillation term runs on the label-free batch (every paired item), CE on the labelled one."""
        T, a = self.cfg.kd_temperature, self.cfg.kd_alpha
        with self.autocast:
            s = self.model(b.x, b.lengths).float()
            s_kd, t_kd = (s, b.tlogits) if b.fa_x is None else (self.model(b.fa_x, b.fa_lengths).float(), b.fa_tlogits)
        ce = F.cross_entropy(s, b.y)
        kd = F.kl_div(F.log_softmax(s_kd / T, 1), F.log_softmax(t_kd.float() / T, 1), log_target=True,
                      reduction="batchmean") * T * T
        loss = (1 - a) * ce + a * kd
        self._apply(loss)
        return {"loss": loss.item(), "ce": ce.item(), "kd": kd.item()}


class FeatureKD(Method):
    name = "feature_kd"
    use_la = False

    def step(self, b):
        cfg = self.cfg
        with self.autocast:
            z = self.model.encode(b.x, b.lengths)
            logits = self.model.head(z).float()
            ce = F.cross_entropy(logits, b.y)
            fx, fl, fzt = b.fa()
            zf = z if b.fa_x is None else self.model.encode(fx, fl)
        fa = feature_alignment(zf.float(), fzt, cfg.cost, cfg.reg, cfg.sinkhorn_iters, cfg.fa_grad)
        loss = ce + cfg.lambda_fa * fa
        out = {"ce": ce.item(), "fa": fa.item()}
        if self.use_la:
            la = label_alignment(logits, self.teacher_head(z.float()), b.y)
            loss = loss + cfg.lambda_la * la
            out["la"] = la.item()
        self._apply(loss)
        return {"loss": loss.item(), **out}


class Joint(FeatureKD):
    name = "joint"
    use_la = True


def _fused_adamw(ps, gs, names, state, lr, wd, t, b1, b2, eps, keep_state):
    """:func:`_adamw_steps` without autograd: one fused (foreach) call per operation over all tensors."""
    if t == 1 and not keep_state:  # m^ = g, v^ = g^2: theta (1 - lr wd) - lr g / (|g| + eps)
        denom = torch._foreach_add_(torch._foreach_abs(gs), eps)
        return torch._foreach_addcdiv_(torch._foreach_mul(ps, 1 - lr * wd), gs, denom, value=-lr)
    c1, c2 = 1 - b1 ** t, 1 - b2 ** t
    sq = torch._foreach_mul(gs, gs)
    if t == 1 or names[0] not in state:
        ms, vs = torch._foreach_mul(gs, 1 - b1), torch._foreach_mul(sq, 1 - b2)
    else:
        ms = torch._foreach_add(torch._foreach_mul([state[n][0] for n in names], b1), gs, alpha=1 - b1)
        vs = torch._foreach_add(torch._foreach_mul([state[n][1] for n in names], b2), sq, alpha=1 - b2)
    state.update({n: (m, v) for n, m, v in zip(names, ms, vs)})
    denom = torch._foreach_add(torch._foreach_sqrt(torch._foreach_div(vs, c2)), eps)
    return torch._foreach_add(torch._foreach_mul(ps, 1 - lr * wd), torch._foreach_div(ms, denom), alpha=-lr / c1)


def _adamw_steps(theta: dict, grads: dict, state: dict, lr: float, wd: float, t: int, betas=(0.9, 0.999),
                 eps=1e-8, differentiable: bool = False, keep_state: bool = True) -> dict:
    """Step ``t`` of an AdamW started afresh (``state`` holds its moments) on a parameter dictionary.

    ``theta <- theta (1 - lr wd) - lr m^/(sqrt(v^) + eps)``, ``m^ = m / (1 - b1^t)``, ``v^ = v / (1 - b2^t)``,
    which at ``t = 1`` is ``theta (1 - lr wd) - lr g / (|g| + eps)``. Parameters without a gradient are
    left as they are (as ``torch.optim.AdamW`` skips them: no decay, no state). With ``differentiable``
    the update stays on the autograd graph, and ``sqrt`` has derivative 0 where ``v^ = 0`` (the
    subgradient of ``|g|`` at 0) instead of ``inf * 0 = nan``. ``keep_state=False`` (no later step)
    lets step 1 skip the moments.
    """
    out = dict(theta)
    names = [n for n in theta if grads.get(n) is not None]
    if not names:
        return out
    b1, b2 = betas
    c1, c2 = 1 - b1 ** t, 1 - b2 ** t
    if not differentiable:
        with torch.no_grad():
            out.update(zip(names, _fused_adamw([theta[n] for n in names], [grads[n] for n in names], names, state,
                                               lr, wd, t, b1, b2, eps, keep_state)))
        return out
    for n in names:
        g, p = grads[n], theta[n]
        m, v = state.get(n, (None, None))
        m = (1 - b1) * g if m is None else b1 * m + (1 - b1) * g
        v = (1 - b2) * g * g if v is None else b2 * v + (1 - b2) * g * g
        state[n] = (m, v)
        vh = v / c2
        pos = vh > 0  # sqrt with derivative 0 at 0 (the subgradient of |g|), not inf * 0 = nan
        root = torch.where(pos, torch.where(pos, vh, torch.ones_like(vh)).sqrt(), torch.zeros_like(vh))
        out[n] = p * (1 - lr * wd) - (lr / c1) * m / (root + eps)
    return out


def _batchnorms(model) -> list:
    """The BatchNorm layers whose running statistics a training-mode forward updates."""
    return [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


def _bn_snapshot(layers) -> list:
    return [(m, m.running_mean.clone(), m.running_var.clone(), int(m.num_batches_tracked)) for m in layers
            if m.training and m.running_mean is not None]


def _bn_repeat(snapshot: list, times: int) -> None:
    """Apply ``times`` more times the running-statistics update of the forward since ``snapshot``.

    A forward in training mode moves a running statistic ``r`` by ``d_1 = r_1 - r_0 = mu_1 (s - r_0)``,
    ``s`` the batch statistic, ``mu`` the momentum (``1 / N_k`` with cumulative averaging, ``N_k`` the
    count after update ``k``). Repeating the update with the same ``s`` (the same batch at the same
    parameters, as the official step's LA forwards and outer forward are) adds
    ``d_{k+1} = (1 - mu) d_k`` (momentum) or ``d_{k+1} = d_k (N_k - 1) / (N_k + 1)`` (cumulative),
    computed from ``d_1`` without forming ``s = r_0 + d_1 / mu`` (which would amplify rounding).
    """
    if times <= 0:
        return
    with torch.no_grad():
        for m, mean0, var0, count0 in snapshot:
            for r, r0 in ((m.running_mean, mean0), (m.running_var, var0)):
                d = r - r0
                n = count0 + 1  # the count after the first update
                for _ in range(times):
                    if m.momentum is None:  # cumulative average: s - r_k = (s - r0) (1 - 1/n) ... d = (s - r_{k-1}) / n
                        d = d * (n - 1) / (n + 1)
                        n += 1
                    else:
                        d = d * (1 - m.momentum)
                    r.add_(d)
            m.num_batches_tracked.add_(times)


class UCMKD(Method):
    """The bi-level UCMKD step (docs/theory.md, section 9), first or second order.

    Per minibatch, from the student's parameters ``theta = (phi, h)`` (encoder, head):

    1. ``n1`` FA steps of a fresh AdamW on the encoder: ``phi' = AdamW^n1(phi; grad_phi FA(phi))``;
    2. ``n2`` LA steps of a fresh AdamW on the head, features detached: ``h' = AdamW^n2(h; grad_h LA(h; z(phi')))``;
    3. the outer gradient of ``CE(phi', h')`` (label-smoothed with ``label_smoothing``) is applied to
       the real student by its optimiser (gradients clipped to ``grad_clip``).

    ``bilevel="first_order"`` takes ``grad_{phi', h'} CE`` (the official step); ``"second_order"``
    differentiates ``CE(phi'(theta), h'(theta, phi'))`` in ``theta`` through the inner steps
    (``create_graph``), the LA step's dependence on the features included.

    ``bn_updates="official"`` updates BatchNorm running statistics as the official step does: one
    update per FA forward, then ``n2 + 1`` updates with the statistics of the labelled batch at
    ``phi'`` (the LA forwards and the outer forward); ``"once"`` keeps only the outer one.
    """

    name = "ucmkd"

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        # bound once, as an optimiser binds its parameters (loading a state dict copies into them)
        self._params = dict(self.model.named_parameters())
        self._buffers = dict(self.model.named_buffers())
        self._head = set(self.model.head_params())
        self._bn = _batchnorms(self.model)

    def _grads(self, loss, params: dict, create_graph: bool = False) -> dict:
        names = [n for n, p in params.items() if p.requires_grad]
        gs = torch.autograd.grad(loss, [params[n] for n in names], allow_unused=True, create_graph=create_graph)
        return {n: g for n, g in zip(names, gs) if g is not None}

    def _encode(self, params: dict | None, buffers: dict | None, x, lengths) -> torch.Tensor:
        """Features at ``params`` with ``buffers`` (``None``: the model's own, run without functional_call)."""
        dicts = tuple(d for d in (params, buffers) if d is not None)
        with self.autocast:
            if not dicts:
                return _upcast(self.model(x, lengths, part="encode"))
            return _upcast(functional_call(self.model, dicts, (x, lengths), {"part": "encode"}, tie_weights=False))

    def _head_logits(self, params: dict | None, z: torch.Tensor) -> torch.Tensor:
        if params is None:
            return _upcast(self.model(z, part="head"))
        return _upcast(functional_call(self.model, params, (z,), {"part": "head"}, strict=False, tie_weights=False))

    def step(self, b):
        cfg = self.cfg
        second = cfg.bilevel == "second_order"
        official_bn = cfg.bn_updates == "official"
        live, buffers = self._params, self._buffers
        if second:
            leaves = {n: p.detach().requires_grad_(True) for n, p in live.items()}
            theta = dict(leaves)
        else:
            theta = live  # first order: step 1 differentiates at the live parameters themselves
        fx, fl, fzt = b.fa()
        fa_val = 0.0
        # --- n1 inner FA steps on the encoder (head untouched), fresh AdamW state
        state = {}
        for t in range(1, cfg.n1 + 1):
            if not second and t > 1:
                theta = {n: p.detach().requires_grad_(n not in self._head) for n, p in theta.items()}
            # official: the FA forward updates the running statistics; once: on a scratch copy
            bufs = None if official_bn else {n: v.clone() for n, v in buffers.items()}
            z = self._encode(None if theta is live else theta, bufs, fx, fl)
            fa = feature_alignment(z, fzt, cfg.cost, cfg.reg, cfg.sinkhorn_iters, cfg.fa_grad,
                                   twice_differentiable=second)
            fa_val = fa.item()
            enc = {n: p for n, p in theta.items() if n not in self._head}
            g = self._grads(fa, enc, create_graph=second)
            theta = _adamw_steps(theta, g, state, cfg.inner_lr, cfg.inner_wd, t, differentiable=second,
                                 keep_state=t < cfg.n1)
        # --- one encoder forward at the displaced parameters, shared by LA and the outer CE
        if not second:
            theta = {n: p.detach().requires_grad_(True) if n not in self._head else p for n, p in theta.items()}
        snapshot = _bn_snapshot(self._bn) if official_bn and cfg.n2 else None
        z = self._encode(theta, None, b.x, b.lengths)
        zd = z.detach()
        t_logits = self.teacher_head(zd)
        # first order: LA on detached features; second order: the head's update depends on z(phi')
        z_la = z if second else zd
        head_theta = {n: (theta if second else live)[n] for n in self._head}  # FA leaves the head alone
        state, la_val = {}, 0.0
        for t in range(1, cfg.n2 + 1):
            if not second and t > 1:
                head_theta = {n: p.detach().requires_grad_(True) for n, p in head_theta.items()}
            on_live = not second and t == 1
            la = label_alignment(self._head_logits(None if on_live else head_theta, z_la), t_logits, b.y,
                                 cfg.label_smoothing)
            la_val = la.item()
            g = self._grads(la, head_theta, create_graph=second)
            head_theta = _adamw_steps(head_theta, g, state, cfg.inner_lr, cfg.inner_wd, t, differentiable=second,
                                      keep_state=t < cfg.n2)
        if not second:
            head_theta = {n: p.detach().requires_grad_(True) for n, p in head_theta.items()}
        ce = F.cross_entropy(self._head_logits(head_theta, z), b.y, label_smoothing=cfg.label_smoothing)
        if second:  # through the inner steps, to the parameters the step started from
            grads = self._grads(ce, leaves)
        else:  # first order: the gradient at the displaced point is applied to the real student
            grads = self._grads(ce, {**{n: p for n, p in theta.items() if n not in self._head}, **head_theta})
        if snapshot:  # the official step's n2 LA forwards see this batch at these parameters too (after the
            _bn_repeat(snapshot, cfg.n2)  # backward: autograd saved the running statistics with the forward)
        self.opt.zero_grad(set_to_none=True)
        for n, p in live.items():
            if n in grads:
                p.grad = grads[n].to(p.dtype)
        out = {"loss": ce.item(), "ce": ce.item(), "fa": fa_val, "la": la_val}
        if cfg.steer_every and self.steps % cfg.steer_every == 0:
            out.update(self._steering(b, grads))
        self._finish()
        return out

    def _steering(self, b, displaced: dict) -> dict:
        """Cosine and norm of the difference between the outer CE gradient at the displaced and at
        the current parameters: how much the alignment steps steer the student."""
        model = self.model
        live = {n: p.detach().requires_grad_(True) for n, p in model.named_parameters()}
        scratch = {n: v.clone() for n, v in model.named_buffers()}
        with self.autocast:
            logits = functional_call(model, (live, scratch), (b.x, b.lengths)).float()
        g_now = self._grads(F.cross_entropy(logits, b.y, label_smoothing=self.cfg.label_smoothing), live)
        names = [n for n in displaced if n in g_now]
        a = torch.cat([displaced[n].flatten() for n in names])
        c = torch.cat([g_now[n].flatten() for n in names])
        return {"steer_cos": float(F.cosine_similarity(a, c, dim=0)), "steer_diff_norm": float((a - c).norm()),
                "steer_grad_norm": float(c.norm())}


METHOD_CLASSES = {"ce": Method, "vanilla_kd": VanillaKD, "feature_kd": FeatureKD, "joint": Joint, "ucmkd": UCMKD,
                  "deepjdot": DeepJDOT, "dann": DANN, "coral": Coral, "ot_pseudo": OTPseudo}


def make_method(cfg: TrainConfig, model, optimizer, **kw) -> Method:
    return METHOD_CLASSES[cfg.method if cfg.role == "student" else "ce"](cfg, model, optimizer, **kw)
