"""The one bridge from trained checkpoints to a :class:`~cmkd_bounds.features.FeatureSet`.

The teacher's held-out *validation* split (teacher modality) is kept for the temperature of the
calibrated posterior; the bound terms use the *test* splits of both modalities (``split="val"`` to
look at validation instead: the student's best epoch was chosen there, so
:func:`held_out_design` makes every certificate pay a union bound over the epochs compared). Both
checkpoints carry the dataset, its fingerprint, the direction and the split seed
(:class:`training.checkpoint.CheckpointMeta`), so nothing else is needed; a teacher and a student
trained on different data, or data that changed since training, are refused.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from cmkd_bounds.features import FeatureSet


@dataclass(frozen=True)
class CheckpointFeatures:
    features: FeatureSet
    info: dict  # what the report records about the source


def features_from_checkpoints(teacher_path, student_path, split: str = "test", progress=None) -> CheckpointFeatures:
    from cmkd_bounds.atomic import file_sha256
    from training.checkpoint import check_compatible, load_model
    from training.config import TrainConfig
    from training.datasets import fingerprint, locate_arrays, same_data
    from training.models import count_structure
    from training.prepare import predict, prepare_data, selection_items

    say = progress or (lambda msg: None)
    teacher, tmeta = load_model(teacher_path, expect_role="teacher")
    student, smeta = load_model(student_path, expect_role="student")
    check_compatible(tmeta, smeta, f"teacher {teacher_path} and student {student_path}")
    cfg = TrainConfig.from_dict(smeta.config)
    if cfg.dataset == "arrays":  # found by content: the path given at training may be relative, or moved
        cfg = replace(cfg, arrays=str(locate_arrays(smeta.data, cfg.arrays, Path(student_path).resolve().parent)))
    now = fingerprint(cfg.dataset, cfg.data_dir, cfg.arrays)
    if not same_data(now, smeta.data):
        raise ValueError(f"the data of {student_path} changed since it was trained: {smeta.data} then, {now} now")
    if smeta.teacher and smeta.teacher.get("sha256") and file_sha256(teacher_path) != smeta.teacher["sha256"]:
        raise ValueError(f"{teacher_path} is not the teacher {student_path} was trained with (its SHA-256 differs "
                         f"from the recorded {smeta.teacher['sha256'][:12]}...)")
    say("loading data")
    pair, splits = prepare_data(cfg)
    dev = "cpu"
    t_cal, t_eval, s_eval = splits["val"].teacher, splits[split].teacher, splits[split].student
    s_val = selection_items(cfg, splits["val"].student)  # the items that chose the student (for ATC)
    head = lambda m: (m.classifier.weight.detach().double().numpy(), m.classifier.bias.detach().double().numpy())  # noqa: E731
    (WT, bT), (WS, bS) = head(teacher), head(student)
    say("extracting features")
    ev = splits[split]
    strata = None  # paired data are split by the teacher's label: the items' strata are the pairs of labels
    if ev.correspondence is not None:
        strata = s_eval.y.numpy() * len(bT) + ev.teacher.y.numpy()[ev.correspondence]
        strata = np.unique(strata, return_inverse=True)[1]
    fs = FeatureSet(
        teacher_z=predict(teacher, t_eval, dev, features=True).double().numpy(), teacher_y=t_eval.y.numpy(),
        student_z=predict(student, s_eval, dev, features=True).double().numpy(), student_y=s_eval.y.numpy(),
        teacher_W=WT, teacher_b=bT, student_W=WS, student_b=bS,
        teacher_cal_z=predict(teacher, t_cal, dev, features=True).double().numpy(), teacher_cal_y=t_cal.y.numpy(),
        student_strata=strata,
        **({"student_val_z": predict(student, s_val, dev, features=True).double().numpy(),
            "student_val_y": s_val.y.numpy()} if split == "test" else {}),
    )
    info = {"teacher": str(Path(teacher_path).resolve()), "student": str(Path(student_path).resolve()),
            "teacher_sha256": file_sha256(teacher_path), "student_sha256": file_sha256(student_path), "split": split,
            "dataset": smeta.dataset, "swap": smeta.swap, "method": smeta.method, "protocol": smeta.protocol,
            "seed": cfg.seed, "labels_per_class": cfg.labels_per_class, "training_cost": cfg.cost,
            "teacher_structure": count_structure(teacher), "student_structure": count_structure(student),
            "teacher_modality": tmeta.modality_name, "student_modality": smeta.modality_name,
            "direction": direction(tmeta, smeta), "data": data_name(smeta),
            "pairing": smeta.pairing, "config": smeta.config,
            "splits_given": bool(pair.splits), **held_out_design(student_path, smeta.config, split, bool(pair.splits))}
    return CheckpointFeatures(fs, info)


def direction(tmeta, smeta) -> str:
    """``teacher -> student`` by modality (``image->audio``), or by view name where the modalities are alike."""
    t, s = (tmeta.modality, smeta.modality) if tmeta.modality != smeta.modality else \
        (tmeta.modality_name, smeta.modality_name)
    return f"{t}->{s}"


def data_name(meta) -> str:
    """The data a run saw: the shipped dataset's name, or a user's file by name and content (first 12 hex of its
    SHA-256), so that runs on two files are never pooled."""
    if meta.dataset != "arrays":
        return meta.dataset
    return f"{Path(meta.data.get('path') or 'arrays').name}#{(meta.data.get('sha256') or '')[:12]}"


def held_out_design(student_path, config: dict, split: str, splits_given: bool) -> dict:
    """How the student's evaluation items were drawn and how many checkpoints were compared on them.

    The shipped splits are class-stratified draws (``sampling = stratified``); splits given in a user's
    file are taken as i.i.d. draws (stated in the report). On the validation split the best of the run's
    epochs was chosen: ``selected_among`` is the number of epochs compared there (the run folder's
    ``metrics.jsonl`` when it sits beside the checkpoint, else the configured epochs).
    """
    E = 1
    if split == "val":
        log = Path(student_path).parent / "metrics.jsonl"
        E = len(log.read_text().splitlines()) if log.exists() else int(config.get("epochs", 1))
        E = max(E, int(config.get("epochs", 1)))
    return {"sampling": "iid" if splits_given else "stratified", "selected_among": E}
