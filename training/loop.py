"""The training loop, top to bottom: data, teacher, model, method, epochs, checkpoints.

``train(cfg)`` trains a teacher (cross-entropy on its modality) or a student (any method of
:mod:`training.methods`, with a frozen teacher checkpoint) in the run folder ``cfg.out``
(:mod:`training.run_folder` says what it holds and when it is reused).

Model selection: the checkpoint with the best validation accuracy is kept (ties go to the later
epoch); the test split is never used. With ``labels_per_class = k`` the validation set is cut to
``k`` labelled items per class too, so selection never uses more labels than training had.

Every epoch is seeded by ``(seed, epoch)`` alone, so a run killed at any point and resumed from
``state.pt`` ends with the same weights as an uninterrupted one (on the same machine and thread
count). Under ``torchrun`` each rank takes every ``world``-th batch of the epoch and gradients are
averaged across ranks before each optimiser step (gloo on CPU, NCCL on GPU).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, replace

import numpy as np
import torch

from training.batches import make_batch, plan_epoch
from training.checkpoint import (
    CheckpointMeta,
    check_compatible,
    load_model,
    load_state,
    save_checkpoint,
    save_state,
    teacher_reference,
)
from training.config import TrainConfig
from training.data import CrossModalPair, ModalityData
from training.datasets import fingerprint
from training.distributed import (
    broadcast_model,
    broadcast_object,
    dist_info,
    grad_reducer,
    ranks_identical_or_raise,
    sync_buffers,
    wait_for_all,
)
from training.methods import EpochContext, Method, make_method
from training.models import Model, make_spec
from training.prepare import accuracy, labelled_subset, predict, prepare_data, selection_items
from training.run_folder import RunFolder


class TrainingDiverged(RuntimeError):
    """A non-finite loss: the run stops instead of training on garbage."""


# ----------------------------------------------------------------------------- devices and ranks
def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name} asked for, but this machine has no CUDA device (torch "
                         f"{torch.__version__}); use --device cpu")
    try:
        return torch.device(name)
    except RuntimeError as e:
        raise ValueError(f"unknown device {name!r}") from e


# ----------------------------------------------------------------------------- teacher
def load_teacher(cfg: TrainConfig, data_fp: dict, train_pair: CrossModalPair, device):
    """The frozen teacher, checked against this run, and its features and logits on the teacher training set."""
    teacher, tmeta = load_model(cfg.teacher, expect_role="teacher", device=device)
    probe = CheckpointMeta(role="student", spec={}, modality="", modality_name="", dataset=cfg.dataset, swap=cfg.swap,
                           split_seed=cfg.split_seed, feat_dim=cfg.feat_dim, cost=cfg.cost, method=cfg.method,
                           protocol=cfg.protocol, config={"standardize": cfg.standardize}, data=data_fp)
    check_compatible(tmeta, probe, f"teacher {cfg.teacher} and this run")
    teacher.requires_grad_(False)
    t_feats = predict(teacher, train_pair.teacher, device, features=True)  # frozen: computed once
    t_logits = teacher.head(t_feats.to(device)).float().cpu()
    return teacher, t_feats, t_logits


# ----------------------------------------------------------------------------- the loop
def train(cfg: TrainConfig) -> RunFolder:
    cfg.validate()
    rank, world = dist_info()
    device = resolve_device(cfg.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", rank % torch.cuda.device_count())
    run = RunFolder(cfg)
    from cmkd_bounds.atomic import claim

    with claim(run.path) if rank == 0 else _nothing():
        run = _train(cfg, run, rank, world, device)
    wait_for_all(world)
    return run


class _nothing:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


@dataclass
class _Setup:
    """Everything an epoch needs, built (and checked against the user's input) before the folder is written."""

    train_pair: CrossModalPair
    data_train: ModalityData
    data_val: ModalityData  # cut to the label budget
    data_test: ModalityData
    y_train: np.ndarray
    lab: np.ndarray  # indices of the labelled training items
    teacher_y: np.ndarray | None
    corr: np.ndarray | None
    t_feats: torch.Tensor | None
    t_logits: torch.Tensor | None
    model: Model
    optimizer: torch.optim.Optimizer
    method: Method
    meta: CheckpointMeta


def _setup(cfg: TrainConfig, world: int, device) -> _Setup:
    """Data, teacher, model, optimiser and method; everything that can fail on the user's input fails here."""
    data_fp = fingerprint(cfg.dataset, cfg.data_dir, cfg.arrays)
    _, splits = prepare_data(cfg)
    train_pair, val_pair, test_pair = splits["train"], splits["val"], splits["test"]
    torch.manual_seed(cfg.seed)
    teacher_head, teacher_ref, t_feats, t_logits, teacher_y, corr = None, None, None, None, None, None
    if cfg.role == "teacher":
        data_train, data_val, data_test = train_pair.teacher, val_pair.teacher, test_pair.teacher
    else:
        teacher, t_feats, t_logits = load_teacher(cfg, data_fp, train_pair, device)
        teacher_head, teacher_ref = teacher.classifier, teacher_reference(cfg.teacher)
        data_train, data_val, data_test = train_pair.student, val_pair.student, test_pair.student
        teacher_y, corr = train_pair.teacher.y.numpy(), train_pair.correspondence
    y_train = data_train.y.numpy()
    counts = np.bincount(y_train)
    if cfg.labels_per_class > counts[counts > 0].min():
        c = int(np.flatnonzero(counts == counts[counts > 0].min())[0])
        raise ValueError(f"--labels-per-class {cfg.labels_per_class}: class {c} has {counts[c]} training items, so at "
                         f"most {counts[c]} per class can be labelled (0 labels every item)")
    lab = labelled_subset(y_train, cfg.labels_per_class, cfg.seed)
    val = selection_items(cfg, data_val)
    if cfg.role == "student":  # the partners of the first epoch: a protocol the data cannot support fails now
        plan_epoch(cfg, y_train, lab, teacher_y, corr, 0)
    model = Model(make_spec(data_train, cfg.feat_dim, cfg.arch)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else torch.autocast("cpu", enabled=False))
    method = make_method(cfg, model, optimizer, teacher_head=teacher_head, reduce_grads=grad_reducer(world),
                         autocast=autocast)
    student = cfg.role == "student"
    meta = CheckpointMeta(role=cfg.role, spec=model.spec, modality=data_train.modality,
                          modality_name=data_train.name, dataset=cfg.dataset, swap=cfg.swap, split_seed=cfg.split_seed,
                          feat_dim=cfg.feat_dim, cost=cfg.cost, method=cfg.method if student else "ce",
                          protocol=cfg.protocol if student else None, config=cfg.to_dict(), data=data_fp,
                          teacher=teacher_ref, num_labelled=int(len(lab)), pairing=train_pair.info)
    return _Setup(train_pair, data_train, val, data_test, y_train, lab, teacher_y, corr, t_feats, t_logits, model,
                  optimizer, method, meta)


def _train(cfg: TrainConfig, run: RunFolder, rank: int, world: int, device) -> RunFolder:
    # rank 0 decides (it alone may replace a folder); every rank then starts, resumes or returns alike
    state = broadcast_object(run.decide() if rank == 0 else None, world)
    if state == "done":
        return run
    s = _setup(cfg, world, device)

    # ---- resume or start
    history, best_acc, start = [], -1.0, 0
    if state == "resume":
        st = load_state(run.file("state.pt"))
        last, _ = load_model(run.file("last.safetensors"), device=device)
        s.model.load_state_dict(last.state_dict())
        s.optimizer.load_state_dict(st["optimizer"])
        s.method.load_state_dict(st.get("method", {}))
        start, best_acc, s.method.steps = int(st["epoch"]) + 1, float(st["best_acc"]), int(st["steps"])
        history = run.history(start)
        if rank == 0:
            run.file("result.json").unlink(missing_ok=True)
    else:
        broadcast_model(s.model, world)  # every rank starts from rank 0's initialisation
    if rank == 0:
        run.write_config()

    # ---- epochs
    for epoch in range(start, cfg.epochs):
        record = _epoch(cfg, s, run, epoch, rank, world, device)
        history.append(record)
        if rank == 0:
            best_acc = _save_epoch(cfg, s, run, epoch, record, history, best_acc)

    # ---- finish
    ranks_identical = ranks_identical_or_raise(s.model, world)
    if rank == 0:
        best, _ = load_model(run.file("best.safetensors"), device=device)
        result = {"test_acc": accuracy(best, s.data_test, device), "best_val_acc": best_acc,
                  "val_items": len(s.data_val),
                  "epoch_time_mean": float(np.mean([r["epoch_time"] for r in history])) if history else None,
                  "kind": cfg.role, "method": s.meta.method, "protocol": s.meta.protocol, "seed": cfg.seed,
                  "labels_per_class": cfg.labels_per_class, "dataset": cfg.dataset, "swap": cfg.swap,
                  "world_size": world, "ranks_identical": ranks_identical, "pairing": s.train_pair.info}
        steer = [r["steer_cos"] for r in history if "steer_cos" in r]
        if steer:
            result["steer_cos_mean"] = float(np.mean(steer))
        run.write_result(result)
    return run


def _label(cfg: TrainConfig) -> str:
    return f"student {cfg.method}" if cfg.role == "student" else "teacher"


def _epoch(cfg: TrainConfig, s: _Setup, run: RunFolder, epoch: int, rank: int, world: int, device) -> dict:
    """One epoch, seeded by ``(seed, epoch)``: every step of this rank, then the validation accuracy."""
    from tqdm.auto import tqdm

    t0 = time.perf_counter()
    s.model.train()
    torch.manual_seed(cfg.seed * 100_003 + epoch)
    plan = plan_epoch(cfg, s.y_train, s.lab, s.teacher_y, s.corr, epoch)
    t_labels = None if s.teacher_y is None else torch.as_tensor(s.teacher_y)
    diagnostics = s.method.begin_epoch(EpochContext(pool=s.data_train, t_feats=s.t_feats, t_labels=t_labels,
                                                    epoch=epoch, seed=cfg.seed, device=device, labelled=s.lab))
    # every rank takes the same number of steps (all-reduce needs it): wrap around when uneven
    mine = [(rank + world * j) % plan.steps for j in range(math.ceil(plan.steps / world))]
    sums = {}
    bar = tqdm(mine, desc=f"{_label(cfg)} epoch {epoch + 1}/{cfg.epochs}", disable=cfg.quiet or rank != 0,
               leave=False)
    for i in bar:
        metrics = s.method.step(make_batch(plan, i, cfg.batch_size, s.data_train, s.t_feats, s.t_logits, device,
                                           s.teacher_y))
        if not math.isfinite(metrics["loss"]):
            last = run.file("last.safetensors")
            raise TrainingDiverged(
                f"non-finite loss {metrics['loss']} at epoch {epoch + 1}, step {s.method.steps}, batch {i}; "
                f"last good checkpoint: {last if last.exists() else 'none yet'}")
        for k, v in metrics.items():
            sums.setdefault(k, []).append(v)
        bar.set_postfix(loss=f"{metrics['loss']:.3f}")
    sync_buffers(s.model, world)  # BatchNorm running statistics: every rank evaluates and saves the same model
    val_acc = accuracy(s.model, s.data_val, device)
    return {"epoch": epoch + 1, "val_acc": val_acc, "val_items": len(s.data_val),
            "epoch_time": time.perf_counter() - t0, "steps": len(mine),
            **{k: float(np.mean(v)) for k, v in sums.items()}, **(diagnostics or {})}


def _save_epoch(cfg: TrainConfig, s: _Setup, run: RunFolder, epoch: int, record: dict, history: list[dict],
                best_acc: float) -> float:
    """Rank 0 after each epoch: the best checkpoint (ties go to the later epoch), the last one, the optimiser
    state and the metrics; returns the best validation accuracy so far."""
    from tqdm.auto import tqdm

    val_acc = record["val_acc"]
    if val_acc >= best_acc:
        best_acc = val_acc
        save_checkpoint(run.file("best.safetensors"), s.model, replace(s.meta, epoch=epoch + 1,
                                                                      metrics={"val_acc": val_acc}))
    save_checkpoint(run.file("last.safetensors"), s.model, replace(s.meta, epoch=epoch + 1, metrics=record))
    save_state(run.file("state.pt"), {"optimizer": s.optimizer.state_dict(), "method": s.method.state_dict(),
                                      "epoch": epoch,
                                      "best_acc": best_acc, "steps": s.method.steps})
    run.write_metrics(history)
    if not cfg.quiet:  # progress on stderr: stdout carries the result (train | jq)
        tqdm.write(f"{_label(cfg)} epoch {epoch + 1}: val acc {val_acc:.4f} ({len(s.data_val)} items), "
                   f"loss {record.get('loss', float('nan')):.4f}, {record['epoch_time']:.1f}s", file=sys.stderr)
    return best_acc
