"""The data of a run and a model's outputs on it: used by the training loop and by the evaluation alike.

:func:`prepare_data` loads the pair a config names, splits it, and applies the preprocessing and the
robustness presets; :func:`predict` runs a model over a dataset in eval mode. Nothing here trains: the
evaluation of a checkpoint imports this module, not the loop, the methods or their optimisers.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from training import protocols
from training.config import TrainConfig
from training.data import CrossModalPair, ModalityData
from training.datasets import load_pair
from training.models import Model


def _standardize(splits: dict[str, CrossModalPair]) -> dict[str, CrossModalPair]:
    """Each modality's features standardised by the training split's per-feature mean and std (real frames)."""
    out = dict(splits)
    for role in ("teacher", "student"):
        tr = getattr(splits["train"], role)
        x = tr.x if tr.lengths is None else tr.x[torch.arange(tr.x.shape[1])[None, :] < tr.lengths[:, None]]
        mean, std = x.mean(0), x.std(0).clamp_min(1e-12)
        for k, part in out.items():
            m = getattr(part, role)
            xs = (m.x - mean) / std
            if m.lengths is not None:  # padding stays zero
                xs = xs * (torch.arange(m.x.shape[1])[None, :] < m.lengths[:, None]).reshape(
                    *m.lengths.shape, m.x.shape[1], *([1] * (m.x.dim() - 2)))
            out[k] = replace(part, **{role: replace(m, x=xs)})
    return out


def prepare_data(cfg: TrainConfig) -> tuple[CrossModalPair, dict[str, CrossModalPair]]:
    """The pair of ``cfg`` and its train/val/test splits, with the robustness presets applied to training."""
    pair = load_pair(cfg.dataset, swap=cfg.swap, data_dir=cfg.data_dir, arrays_path=cfg.arrays,
                     allow_label_disagreement=cfg.allow_label_disagreement)
    splits = pair.split(cfg.split_seed)
    if cfg.standardize:
        splits = _standardize(splits)
    train = splits["train"]
    if cfg.disjoint:  # robustness preset: no training event is seen in both modalities
        if train.correspondence is None:
            raise protocols.ProtocolError(f"--disjoint needs paired data (shared events); in {pair.name} the two "
                                          "modalities share no sample to begin with")
        s_pool, t_pool = protocols.disjoint(train.teacher.y.numpy()[train.correspondence], cfg.disjoint,
                                            cfg.split_seed)
        info = {**train.info, "disjoint": {
            "ratio": cfg.disjoint, "student_events": len(s_pool), "teacher_events": len(t_pool),
            "dropped": f"all {len(train.correspondence)} training pairs (each training event is kept by one modality "
                       "only); validation and test keep their pairs"}}
        train = replace(train, student=train.student.subset(s_pool),
                        teacher=train.teacher.subset(train.correspondence[t_pool]), correspondence=None, info=info)
        if cfg.protocol == "paired":
            raise protocols.ProtocolError(f"--protocol paired: the disjoint preset leaves {pair.name} no training pair "
                                          "(each training event is seen by one modality only); use fixed_class, "
                                          "class_resample or permutation, or drop --disjoint")
    if cfg.imbalance:  # robustness preset: a long-tailed student training set
        keep = protocols.imbalance(train.student.y.numpy(), cfg.imbalance, cfg.split_seed, train.student.num_classes)
        corr = None if train.correspondence is None else train.correspondence[keep]
        train = replace(train, student=train.student.subset(keep), correspondence=corr)
    if cfg.role == "student" and cfg.protocol == "paired" and train.correspondence is None:
        raise protocols.ProtocolError(f"--protocol paired needs an instance correspondence, and {pair.name} has none "
                                      "(use class_resample, permutation or fixed_class)")
    splits["train"] = train
    if cfg.domain_shift:
        for k, part in splits.items():
            s = part.student
            x = protocols.domain_shift(s.x, cfg.domain_shift, seed=cfg.split_seed * 31 + len(k), lengths=s.lengths)
            splits[k] = replace(part, student=replace(s, x=x))
    return pair, splits


def labelled_subset(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """``per_class`` items of each class (seeded); all items when ``per_class`` is 0."""
    if per_class == 0:
        return np.arange(len(y))
    rng = np.random.default_rng([seed, 7])
    return np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[:per_class] for c in np.unique(y)]))


def selection_items(cfg: TrainConfig, data_val: ModalityData) -> ModalityData:
    """The validation items that choose a run's best epoch: cut to the label budget (``labels_per_class`` per
    class), so selection never uses more labels than training had."""
    return data_val.subset(labelled_subset(data_val.y.numpy(), cfg.labels_per_class, cfg.seed + 1))


@torch.no_grad()
def predict(model: Model, data: ModalityData, device, batch_size: int = 512, features: bool = False):
    """Logits (or features) of a model on a dataset, in eval mode, float32 on the CPU."""
    model.eval()
    out = []
    for s in range(0, len(data), batch_size):
        x = data.x[s : s + batch_size].to(device)
        lengths = None if data.lengths is None else data.lengths[s : s + batch_size].to(device)
        out.append((model.encode(x, lengths) if features else model(x, lengths)).float().cpu())
    return torch.cat(out) if out else torch.zeros(0)


def accuracy(model, data: ModalityData, device) -> float:
    return float((predict(model, data, device).argmax(1) == data.y).float().mean())


