"""Batch preparation: which student items a step sees, and which teacher items are shown beside them.

Every epoch is a pure function of ``(seed, epoch)``: the order of the student training pool, the
order of the labelled items and the teacher partner of every pool item (:mod:`training.protocols`).

- All labels (``labels_per_class = 0``): a step takes the next ``batch_size`` items of the pool, all
  labelled; their partners serve every loss (FA, KD).
- Few labels (``labels_per_class = k``): a step takes ``batch_size`` labelled items (cycling over the
  ``k`` per class) for the label losses (CE, LA) and the next ``batch_size`` items of the whole pool,
  labelled or not, with their partners, for the label-free losses (FA; vanilla KD's distillation
  term). Partners follow the protocol for every pool item: ``paired`` the real correspondence,
  ``fixed_class`` its simulated pairing (a class-matched draw made once, as a real pairing would
  give an unlabelled item a partner of its own class), ``permutation`` random teacher items.
  ``class_resample`` would need the unlabelled items' classes and is refused
  (:meth:`training.config.TrainConfig.validate`).

The epoch length is the pool's: ``ceil(pool / batch_size)`` steps.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from training import protocols
from training.data import ModalityData
from training.methods import Batch


@dataclass(frozen=True)
class EpochPlan:
    order: np.ndarray  # pool items in this epoch's order
    lab_order: np.ndarray  # labelled items in this epoch's order
    partners: np.ndarray | None  # teacher partner of every pool item (students only)
    steps: int
    semi: bool


def plan_epoch(cfg, y_train: np.ndarray, lab: np.ndarray, teacher_y: np.ndarray | None, correspondence,
               epoch: int) -> EpochPlan:
    rng = np.random.default_rng([cfg.seed, epoch, 1])
    order = rng.permutation(len(y_train))
    lab_order = rng.permutation(lab)
    partners = None
    if teacher_y is not None:
        partners = protocols.partners(cfg.protocol, y_train, teacher_y, cfg.seed, epoch, correspondence)
    return EpochPlan(order, lab_order, partners, math.ceil(len(order) / cfg.batch_size), cfg.labels_per_class > 0)


def _to(x, device):
    return None if x is None else x.to(device, non_blocking=True)


def _rows(data: ModalityData, idx, device):
    lengths = None if data.lengths is None else data.lengths[idx]
    return _to(data.x[idx], device), _to(lengths, device)


def make_batch(plan: EpochPlan, i: int, batch_size: int, data: ModalityData, t_feats, t_logits, device,
               t_labels=None) -> Batch:
    """The ``i``-th batch of the epoch (labelled items, and the label-free batch in the few-label regime), with the
    partners' teacher features, logits and labels (``t_labels``) and the items' places in the pool."""
    sl = np.arange(i * batch_size, (i + 1) * batch_size)
    fa_b = plan.order[i * batch_size : (i + 1) * batch_size]
    if plan.semi:
        lab_b = np.take(plan.lab_order, sl, mode="wrap")
        lab_b = np.unique(lab_b) if len(plan.lab_order) < batch_size else lab_b
    else:
        lab_b = fa_b
    x, lengths = _rows(data, lab_b, device)
    b = Batch(x=x, y=_to(data.y[lab_b], device), lengths=lengths, idx=torch.as_tensor(lab_b))
    labels = None if t_labels is None else torch.as_tensor(np.asarray(t_labels))
    if plan.partners is not None:
        p = torch.as_tensor(plan.partners[lab_b])
        b.zt, b.tlogits = _to(t_feats[p], device), _to(t_logits[p], device)
        b.yt = None if labels is None else _to(labels[p], device)
        if plan.semi:
            q = torch.as_tensor(plan.partners[fa_b])
            b.fa_x, b.fa_lengths = _rows(data, fa_b, device)
            b.fa_zt, b.fa_tlogits = _to(t_feats[q], device), _to(t_logits[q], device)
            b.fa_yt, b.fa_idx = (None if labels is None else _to(labels[q], device)), torch.as_tensor(fa_b)
    return b
