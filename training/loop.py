"""The training loop, top to bottom: data, model, method, epochs, checkpoints.

``train(cfg)`` trains a teacher (cross-entropy on its modality) or a student (any method of
:mod:`training.methods`, with a frozen teacher checkpoint) and leaves in ``cfg.out``:

- ``config.json``: the configuration;
- ``metrics.jsonl``: one JSON line per epoch (losses, validation accuracy, epoch time, steering);
- ``last.safetensors`` + ``state.pt``: the newest weights and optimiser state (resume);
- ``best.safetensors``: the weights with the best validation accuracy (model selection on the
  validation split, never on test);
- ``result.json``: the test accuracy of ``best`` at the end.

Every epoch is seeded by ``(seed, epoch)`` alone, so a run killed at any point and resumed from
``state.pt`` ends with the same weights as an uninterrupted one (on the CPU). Under ``torchrun``
each rank takes every ``world``-th item of the epoch's order and gradients are averaged across
ranks before each optimiser step (gloo on CPU, NCCL on GPU).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from cmkd_bounds.atomic import write_text
from training import protocols
from training.checkpoint import load_model, load_state, save_checkpoint, save_state
from training.config import TrainConfig
from training.datasets import CrossModalPair, ModalityData, load_pair
from training.distributed import dist_info, grad_reducer, sync_buffers
from training.methods import Batch, make_method
from training.models import Model, make_spec


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


# ----------------------------------------------------------------------------- data
def prepare_data(cfg: TrainConfig) -> tuple[CrossModalPair, dict[str, CrossModalPair]]:
    from dataclasses import replace

    pair = load_pair(cfg.dataset, swap=cfg.swap, data_dir=cfg.data_dir, arrays_path=cfg.arrays)
    splits = pair.split(cfg.split_seed)
    train = splits["train"]
    if cfg.disjoint:  # robustness preset: no training event is seen in both modalities
        if train.correspondence is None:
            raise protocols.ProtocolError(f"--disjoint needs paired data (shared events); in {cfg.dataset} the two "
                                          "modalities share no sample already")
        s_pool, t_pool = protocols.disjoint(train.teacher.y.numpy()[train.correspondence], cfg.disjoint,
                                            cfg.split_seed)
        train = replace(train, student=train.student.subset(s_pool),
                        teacher=train.teacher.subset(train.correspondence[t_pool]), correspondence=None)
    if cfg.imbalance:  # robustness preset: a long-tailed student training set
        keep = protocols.imbalance(train.student.y.numpy(), cfg.imbalance, cfg.split_seed,
                                   train.student.num_classes)
        corr = None if train.correspondence is None else train.correspondence[keep]
        train = replace(train, student=train.student.subset(keep), correspondence=corr)
    splits["train"] = train
    if cfg.domain_shift:
        for k, part in splits.items():
            s = part.student
            x = protocols.domain_shift(s.x, cfg.domain_shift, seed=cfg.split_seed * 31 + len(k), lengths=s.lengths)
            splits[k] = replace(part, student=replace(s, x=x))
    return pair, splits


def _to(x, device):
    return None if x is None else x.to(device, non_blocking=True)


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


def labelled_subset(y: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """``per_class`` items of each class (seeded); all items when ``per_class`` is 0."""
    if per_class == 0:
        return np.arange(len(y))
    rng = np.random.default_rng([seed, 7])
    return np.sort(np.concatenate([rng.permutation(np.flatnonzero(y == c))[:per_class] for c in np.unique(y)]))


# ----------------------------------------------------------------------------- the loop
def train(cfg: TrainConfig) -> Path:
    cfg.validate()
    rank, world = dist_info()
    device = resolve_device(cfg.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", rank % torch.cuda.device_count())
    out = Path(cfg.out)
    state_file = out / "state.pt"
    resuming = cfg.resume and not cfg.overwrite and state_file.exists()
    if rank == 0 and not resuming and out.exists() and any(out.iterdir()):
        if not cfg.overwrite:
            raise FileExistsError(f"run folder {out} is not empty and holds no resumable state: pass --overwrite "
                                  "or choose another --out")
        for f in ("last.safetensors", "best.safetensors", "state.pt", "metrics.jsonl", "result.json"):
            (out / f).unlink(missing_ok=True)
    _, splits = prepare_data(cfg)
    train_pair, val_pair, test_pair = splits["train"], splits["val"], splits["test"]
    torch.manual_seed(cfg.seed)

    teacher_meta = None
    if cfg.role == "teacher":
        data_train, data_val, data_test = train_pair.teacher, val_pair.teacher, test_pair.teacher
        teacher_head = None
    else:
        teacher, teacher_meta = load_model(cfg.teacher, expect_kind="teacher", device=device)
        tc = teacher_meta["config"]
        for key in ("dataset", "swap", "split_seed"):
            if tc[key] != getattr(cfg, key):
                raise ValueError(f"teacher {cfg.teacher} was trained with {key}={tc[key]!r}, this run has "
                                 f"{getattr(cfg, key)!r}: the student must see the same benchmark and splits")
        teacher.requires_grad_(False)
        data_train, data_val, data_test = train_pair.student, val_pair.student, test_pair.student
        t_feats = predict(teacher, train_pair.teacher, device, features=True)  # frozen: computed once
        t_logits = teacher.head(t_feats.to(device)).float().cpu()
        teacher_head = teacher.classifier
        if cfg.feat_dim != teacher_meta["spec"]["feat_dim"]:
            raise ValueError(f"the student's feature space must be the teacher's: feat_dim {cfg.feat_dim} vs "
                             f"{teacher_meta['spec']['feat_dim']}")
    spec = make_spec(data_train, cfg.feat_dim, cfg.arch)
    model = Model(spec).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                else torch.autocast("cpu", enabled=False))
    method = make_method(cfg, model, optimizer, teacher_head=teacher_head, reduce_grads=grad_reducer(world),
                         autocast=autocast)

    history, best_acc, start = [], -1.0, 0
    if resuming:
        saved = json.loads((out / "config.json").read_text())
        free = {"epochs", "quiet", "resume", "overwrite", "device"}  # may change when a run is continued
        diff = {k: (saved[k], v) for k, v in cfg.to_dict().items() if k not in free and k in saved and saved[k] != v}
        if diff:
            k, (old, new) = next(iter(diff.items()))
            raise ValueError(f"{out} holds a run with another configuration ({k}: {old!r} there, {new!r} now); "
                             "resume with the same options, or pass --overwrite / another --out")
        st = load_state(state_file)
        last, _ = load_model(out / "last.safetensors", device=device)
        model.load_state_dict(last.state_dict())
        optimizer.load_state_dict(st["optimizer"])
        start, best_acc, method.steps = int(st["epoch"]) + 1, float(st["best_acc"]), int(st["steps"])
        history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()][:start]
    elif world > 1:
        import torch.distributed as dist

        for p in model.state_dict().values():
            dist.broadcast(p, 0)
    if rank == 0:
        write_text(out / "config.json", json.dumps(cfg.to_dict(), indent=2) + "\n")

    y_train = data_train.y.numpy()
    lab = labelled_subset(y_train, cfg.labels_per_class, cfg.seed)
    semi = cfg.labels_per_class > 0
    meta = {"kind": cfg.role, "modality": data_train.modality, "modality_name": data_train.name,
            "dataset": cfg.dataset, "swap": cfg.swap, "protocol": cfg.protocol if cfg.role == "student" else None,
            "split_seed": cfg.split_seed, "feat_dim": cfg.feat_dim, "cost": cfg.cost,
            "method": cfg.method if cfg.role == "student" else "ce", "config": cfg.to_dict(),
            "teacher_checkpoint": cfg.teacher, "num_labelled": int(len(lab))}

    for epoch in range(start, cfg.epochs):
        t0 = time.perf_counter()
        model.train()
        torch.manual_seed(cfg.seed * 100_003 + epoch)
        rng = np.random.default_rng([cfg.seed, epoch, 1])
        pool = np.arange(len(y_train))  # every student training item: the FA pool and the epoch length
        order = rng.permutation(pool)
        lab_order = rng.permutation(lab)
        partners = None
        if cfg.role == "student":
            corr = train_pair.correspondence
            partners = protocols.partners(cfg.protocol, y_train, train_pair.teacher.y.numpy(), cfg.seed, epoch, corr)
            fa_partners = protocols.permutation(len(y_train), len(t_feats), cfg.seed + 1, epoch)
        steps_per_epoch = math.ceil(len(order) / cfg.batch_size)
        sums, count = {}, 0
        # every rank takes the same number of steps (all-reduce needs it): wrap around when uneven
        mine = [(rank + world * j) % steps_per_epoch for j in range(math.ceil(steps_per_epoch / world))]
        bar = tqdm(mine, desc=f"{cfg.role} {cfg.method if cfg.role == 'student' else ''}"
                   f" epoch {epoch + 1}/{cfg.epochs}", disable=cfg.quiet or rank != 0, leave=False)
        for i in bar:
            if semi:
                lab_b = np.take(lab_order, np.arange(i * cfg.batch_size, (i + 1) * cfg.batch_size), mode="wrap")
                lab_b = np.unique(lab_b) if len(lab) < cfg.batch_size else lab_b
                fa_b = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
            else:
                lab_b = order[i * cfg.batch_size : (i + 1) * cfg.batch_size]
                fa_b = None
            batch = Batch(x=_to(data_train.x[lab_b], device), y=_to(data_train.y[lab_b], device),
                          lengths=_to(None if data_train.lengths is None else data_train.lengths[lab_b], device))
            if partners is not None:
                batch.zt, batch.tlogits = _to(t_feats[partners[lab_b]], device), _to(t_logits[partners[lab_b]], device)
                if fa_b is not None:
                    batch.fa_x = _to(data_train.x[fa_b], device)
                    batch.fa_lengths = _to(None if data_train.lengths is None else data_train.lengths[fa_b], device)
                    batch.fa_zt = _to(t_feats[fa_partners[fa_b]], device)
            metrics = method.step(batch)
            if not math.isfinite(metrics["loss"]):
                last = out / "last.safetensors"
                raise TrainingDiverged(
                    f"non-finite loss {metrics['loss']} at epoch {epoch + 1}, step {method.steps}, batch {i}; "
                    f"last good checkpoint: {last if last.exists() else 'none yet'}")
            for k, v in metrics.items():
                sums.setdefault(k, []).append(v)
            count += 1
            bar.set_postfix(loss=f"{metrics['loss']:.3f}")
        sync_buffers(model, world)  # BatchNorm running statistics: every rank evaluates and saves the same model
        val_acc = accuracy(model, data_val, device)
        record = {"epoch": epoch + 1, "val_acc": val_acc, "epoch_time": time.perf_counter() - t0, "steps": count,
                  **{k: float(np.mean(v)) for k, v in sums.items()}}
        history.append(record)
        if rank == 0:
            if val_acc > best_acc:
                best_acc = val_acc
                save_checkpoint(out / "best.safetensors", model, {**meta, "epoch": epoch + 1,
                                                                  "metrics": {"val_acc": val_acc}})
            save_checkpoint(out / "last.safetensors", model, {**meta, "epoch": epoch + 1, "metrics": record})
            save_state(state_file, {"optimizer": optimizer.state_dict(), "epoch": epoch, "best_acc": best_acc,
                                    "steps": method.steps})
            write_text(out / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in history))
            if not cfg.quiet:
                tqdm.write(f"{cfg.role} {meta['method']} epoch {epoch + 1}: val acc {val_acc:.4f}, "
                           f"loss {record.get('loss', float('nan')):.4f}, {record['epoch_time']:.1f}s")
    ranks_identical = None
    if world > 1:  # a cheap guard: every rank must hold the same weights after the last step
        import torch.distributed as dist

        flat = torch.cat([p.detach().double().flatten() for p in model.state_dict().values()
                          if p.is_floating_point()])
        gathered = [torch.zeros_like(flat) for _ in range(world)]
        dist.all_gather(gathered, flat)
        ranks_identical = all(torch.equal(gathered[0], g) for g in gathered[1:])
        if not ranks_identical:
            raise RuntimeError("distributed ranks ended with different weights")
    if rank == 0:
        best, _ = load_model(out / "best.safetensors", device=device)
        result = {"test_acc": accuracy(best, data_test, device), "best_val_acc": best_acc,
                  "epoch_time_mean": float(np.mean([r["epoch_time"] for r in history])) if history else None,
                  "kind": cfg.role, "method": meta["method"], "protocol": meta["protocol"], "seed": cfg.seed,
                  "labels_per_class": cfg.labels_per_class, "dataset": cfg.dataset, "swap": cfg.swap,
                  "world_size": world, "ranks_identical": ranks_identical}
        if cfg.role == "student" and cfg.method == "ucmkd" and history and "steer_cos" in history[-1]:
            result["steer_cos_last_epoch"] = history[-1]["steer_cos"]
        write_text(out / "result.json", json.dumps(result, indent=2) + "\n")
    return out
