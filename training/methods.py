"""Training methods: small objects with one ``step(batch) -> metrics``.

- ``ce``: cross-entropy only (teachers, and the no-distillation student baseline);
- ``vanilla_kd``: ``(1 - a) CE + a T^2 KL(softmax(t/T) || softmax(s/T))`` on paired items;
- ``feature_kd``: ``CE + lambda_fa FA``;
- ``joint``: ``CE + lambda_fa FA + lambda_la LA`` in one optimiser (the naive ablation);
- ``ucmkd``: the first-order bi-level step of the official code (docs/theory.md, section 9).

The UCMKD step never deep-copies the student. With ``n1 = n2 = 1`` it costs one forward and
backward of the encoder for the FA step, one forward at the displaced parameters (shared by the
LA step, on detached features, and by the outer CE step) and one backward: about 2x a CE step.
The displaced parameters live in a dictionary and the model runs on them through
``torch.func.functional_call``. Each inner step is the first step of a fresh AdamW (the official
code builds its inner optimiser anew each minibatch): ``theta <- theta (1 - lr wd) - lr m^/(sqrt v^ + eps)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.func import functional_call
from torch.nn import functional as F

from training.alignment import feature_alignment, label_alignment
from training.config import TrainConfig


@dataclass
class Batch:
    """Labelled student items and what the teacher side shows beside them.

    ``zt``/``tlogits``: the frozen teacher's features and logits of each item's partner.
    ``fa_*``: a separate batch for the label-free losses (feature alignment, KD's distillation term) in
    the few-label regime (every pool item, labelled or not); ``None`` reuses the labelled one.
    """

    x: torch.Tensor
    y: torch.Tensor
    lengths: torch.Tensor | None = None
    zt: torch.Tensor | None = None
    tlogits: torch.Tensor | None = None
    fa_x: torch.Tensor | None = None
    fa_lengths: torch.Tensor | None = None
    fa_zt: torch.Tensor | None = None
    fa_tlogits: torch.Tensor | None = None

    def fa(self):
        if self.fa_x is None:
            return self.x, self.lengths, self.zt
        return self.fa_x, self.fa_lengths, self.fa_zt


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
        fa = feature_alignment(zf.float(), fzt, cfg.cost, cfg.reg, cfg.sinkhorn_iters)
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


def _adamw_first_steps(theta: dict, grads: dict, state: dict, lr: float, wd: float, t: int,
                       betas=(0.9, 0.999), eps=1e-8) -> dict:
    """One AdamW step on a parameter dictionary (no autograd history); ``state`` holds the moments."""
    out = {}
    for n, p in theta.items():
        g = grads.get(n)
        if g is None:
            out[n] = p
            continue
        m, v = state.get(n, (torch.zeros_like(p), torch.zeros_like(p)))
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        state[n] = (m, v)
        mh, vh = m / (1 - betas[0] ** t), v / (1 - betas[1] ** t)
        out[n] = p * (1 - lr * wd) - lr * mh / (vh.sqrt() + eps)
    return out


class UCMKD(Method):
    name = "ucmkd"

    def _grads(self, loss, params: dict) -> dict:
        names = list(params)
        gs = torch.autograd.grad(loss, [params[n] for n in names], allow_unused=True)
        return {n: g for n, g in zip(names, gs) if g is not None}

    def step(self, b):
        cfg, model = self.cfg, self.model
        live = dict(model.named_parameters())
        buffers = dict(model.named_buffers())
        head = set(model.head_params())
        theta = {n: p.detach() for n, p in live.items()}
        fx, fl, fzt = b.fa()
        fa_val = 0.0
        # --- n1 inner FA steps on the encoder (head untouched), fresh AdamW state
        state = {}
        for t in range(1, cfg.n1 + 1):
            enc = {n: p.requires_grad_(True) if n not in head else p
                   for n, p in ((n, theta[n].detach()) for n in theta)}
            scratch = {n: v.clone() for n, v in buffers.items()}  # keep running stats for the outer pass
            with self.autocast:
                z = functional_call(model, (enc, scratch), (fx, fl), {"part": "encode"})
            fa = feature_alignment(z.float(), fzt, cfg.cost, cfg.reg, cfg.sinkhorn_iters)
            fa_val = fa.item()
            g = self._grads(fa, {n: enc[n] for n in enc if n not in head})
            theta = _adamw_first_steps({n: enc[n].detach() for n in enc}, g, state, cfg.inner_lr, cfg.inner_wd, t)
        # --- one encoder forward at the displaced parameters, shared by LA (detached) and the outer CE
        outer = {n: p.detach().requires_grad_(True) for n, p in theta.items()}
        with self.autocast:
            z = functional_call(model, (outer, buffers), (b.x, b.lengths), {"part": "encode"})
        z = z.float()
        zd = z.detach()
        t_logits = self.teacher_head(zd)
        state, la_val = {}, 0.0
        head_theta = {n: outer[n] for n in head}
        for t in range(1, cfg.n2 + 1):
            hp = {n: p.detach().requires_grad_(True) for n, p in head_theta.items()}
            la = label_alignment(functional_call(model, hp, (zd,), {"part": "head"}, strict=False), t_logits, b.y)
            la_val = la.item()
            head_theta = _adamw_first_steps({n: p.detach() for n, p in hp.items()}, self._grads(la, hp), state,
                                            cfg.inner_lr, cfg.inner_wd, t)
        hp = {n: p.detach().requires_grad_(True) for n, p in head_theta.items()}
        logits = functional_call(model, hp, (z,), {"part": "head"}, strict=False).float()
        ce = F.cross_entropy(logits, b.y)
        enc_outer = {n: p for n, p in outer.items() if n not in head}
        grads = self._grads(ce, {**enc_outer, **hp})
        # --- first order: the gradient at the displaced point is applied to the real student
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
        g_now = self._grads(F.cross_entropy(logits, b.y), live)
        names = [n for n in displaced if n in g_now]
        a = torch.cat([displaced[n].flatten() for n in names])
        c = torch.cat([g_now[n].flatten() for n in names])
        return {"steer_cos": float(F.cosine_similarity(a, c, dim=0)), "steer_diff_norm": float((a - c).norm()),
                "steer_grad_norm": float(c.norm())}


METHOD_CLASSES = {"ce": Method, "vanilla_kd": VanillaKD, "feature_kd": FeatureKD, "joint": Joint, "ucmkd": UCMKD}


def make_method(cfg: TrainConfig, model, optimizer, **kw) -> Method:
    return METHOD_CLASSES[cfg.method if cfg.role == "student" else "ce"](cfg, model, optimizer, **kw)
