"""Checkpoints -> features -> terms -> report; and the same across a folder of many runs.

The teacher's held-out *validation* split (teacher modality) fits the temperature; the bound terms
use the *test* splits of both modalities (``split="val"`` to look at validation instead). Both
checkpoints carry the dataset, modality order and split seed, so nothing else is needed; a
teacher and student trained on different benchmarks or splits are refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cmkd_bounds.atomic import output_folder, write_bytes, write_text
from cmkd_bounds.complexity import vc_dimension_upper, vc_uniform_term
from cmkd_bounds.evaluate import evaluate_features
from cmkd_bounds.theorem import BoundReport, FeatureSet


def features_from_checkpoints(teacher_path, student_path, split: str = "test") -> tuple[FeatureSet, dict]:
    from training.checkpoint import load_model
    from training.config import TrainConfig
    from training.loop import predict, prepare_data
    from training.models import count_structure

    teacher, tmeta = load_model(teacher_path, expect_kind="teacher")
    student, smeta = load_model(student_path, expect_kind="student")
    for key in ("dataset", "swap", "split_seed"):
        if tmeta.get(key) != smeta.get(key):
            raise ValueError(f"teacher and student checkpoints disagree on {key}: {tmeta.get(key)!r} vs "
                             f"{smeta.get(key)!r}")
    if tmeta["feat_dim"] != smeta["feat_dim"]:
        raise ValueError(f"teacher and student feature sizes differ: {tmeta['feat_dim']} vs {smeta['feat_dim']}")
    cfg = TrainConfig.from_dict(smeta["config"])
    _, splits = prepare_data(cfg)
    dev = "cpu"
    t_cal, t_eval, s_eval = splits["val"].teacher, splits[split].teacher, splits[split].student
    head = lambda m: (m.classifier.weight.detach().double().numpy(), m.classifier.bias.detach().double().numpy())  # noqa: E731
    (WT, bT), (WS, bS) = head(teacher), head(student)
    fs = FeatureSet(
        teacher_z=predict(teacher, t_eval, dev, features=True).double().numpy(), teacher_y=t_eval.y.numpy(),
        student_z=predict(student, s_eval, dev, features=True).double().numpy(), student_y=s_eval.y.numpy(),
        teacher_W=WT, teacher_b=bT, student_W=WS, student_b=bS,
        teacher_cal_z=predict(teacher, t_cal, dev, features=True).double().numpy(), teacher_cal_y=t_cal.y.numpy(),
    )
    info = {"teacher": str(teacher_path), "student": str(student_path), "split": split,
            "dataset": smeta["dataset"], "swap": smeta.get("swap"), "method": smeta.get("method"),
            "protocol": smeta.get("protocol"), "seed": smeta["config"].get("seed"),
            "labels_per_class": smeta["config"].get("labels_per_class"),
            "teacher_structure": count_structure(teacher), "student_structure": count_structure(student),
            "teacher_modality": tmeta.get("modality_name"), "student_modality": smeta.get("modality_name")}
    return fs, info


def _vc_terms(info: dict, fs: FeatureSet, eta: float, clip: float):
    out = []
    for role, n in (("teacher", len(fs.teacher_y)), ("student", len(fs.student_y))):
        st = info[f"{role}_structure"]
        vc = vc_dimension_upper(st["params"], st["layers"], st["units"])
        t = vc_uniform_term(vc, n, eta, clip, name=f"vc_term_{role}")
        out.append(t)
    return out


def evaluate_checkpoints(teacher, student, out, *, cost="l2", eta=0.05, seed=0, overwrite=False, clip=5.0,
                         posterior="calibrated", split="test", **kw) -> BoundReport:
    fs, info = features_from_checkpoints(teacher, student, split)
    title = (f"Bound report: {info['method']} student ({info['student_modality']}) taught by "
             f"{info['teacher_modality']}, {info['dataset']}, seed {info['seed']}")
    return evaluate_features(
        fs, out, cost=cost, eta=eta, seed=seed, overwrite=overwrite, clip=clip, posterior=posterior, title=title,
        source=info, extra_terms=_vc_terms(info, fs, eta, clip),
        extra_assumptions=["VC terms (Bartlett et al. 2019) are shown for comparison only; they are not part of "
                           "any bound above"], **kw)


def evaluate_runs(runs: str | Path, out: str | Path, *, overwrite=False, **kw) -> list[dict]:
    """Evaluate every student run under ``runs`` (folders holding ``best.safetensors`` whose metadata
    names its teacher) into ``out/<run>/`` and write ``summary.csv``, ``summary.md`` and
    ``bound_gap_by_method.png`` across methods and seeds."""
    from training.checkpoint import read_checkpoint

    runs = Path(runs)
    students = []
    for ck in sorted(runs.rglob("best.safetensors")):
        meta, _ = read_checkpoint(ck)
        if meta.get("kind") == "student" and meta.get("teacher_checkpoint"):
            students.append((ck, meta))
    if not students:
        raise FileNotFoundError(f"{runs}: no student run (best.safetensors with kind=student) found")
    rows = []
    with output_folder(out, overwrite) as tmp:
        for ck, meta in students:
            name = str(ck.parent.relative_to(runs)).replace("/", "__") or "run"
            teacher = Path(meta["teacher_checkpoint"])
            if not teacher.is_absolute() and not teacher.exists():
                teacher = runs / teacher
            rep = evaluate_checkpoints(teacher, ck, tmp / name, **kw)
            d = rep.to_dict()
            rows.append({"run": name, "method": meta.get("method"), "protocol": meta.get("protocol"),
                         "labels_per_class": meta["config"].get("labels_per_class", 0),
                         "seed": meta["config"].get("seed"), "observed_risk": d["observed_risk"],
                         "observed_error01": d["observed_error01"], "bound_asymptotic": d["bound_asymptotic"],
                         "bound_certified": d["bound_certified"], "bound_estimated": d["bound_estimated"],
                         "gap_asymptotic_rel": d["gap"]["asymptotic"]["relative"],
                         "gap_estimated_rel": d["gap"]["estimated"]["relative"],
                         "certified": d["certified"]})
        keys = list(rows[0])
        write_text(tmp / "summary.csv", ",".join(keys) + "\n" + "".join(
            ",".join(str(r[k]) for k in keys) + "\n" for r in rows))
        md = ["| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
        md += ["| " + " | ".join(f"{r[k]:.4g}" if isinstance(r[k], float) else str(r[k]) for k in keys) + " |"
               for r in rows]
        write_text(tmp / "summary.md", "\n".join(md) + "\n")
        write_bytes(tmp / "bound_gap_by_method.png", _fig_runs(rows))
    return rows


def _fig_runs(rows) -> bytes:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = {}
    for r in rows:
        labels = "all labels" if not r["labels_per_class"] else f"{r['labels_per_class']}/class"
        groups.setdefault(f"{r['method']}\n{r['protocol']}\n{labels}", []).append(r)
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(groups)), 4.5))
    for i, rs in enumerate(groups.values()):
        for key, off, color in (("observed_risk", -0.3, "#8172b2"), ("bound_certified", -0.1, "#55a868"),
                                ("bound_estimated", 0.1, "#4c72b0"), ("bound_asymptotic", 0.3, "#dd8452")):
            vals = np.array([r[key] for r in rs])
            ax.scatter(np.full(len(vals), i + off), vals, color=color, s=14,
                       label=key if i == 0 else None)
    ax.set_xticks(range(len(groups)), list(groups), fontsize=7)
    ax.set_yscale("log")
    ax.set_ylabel("nats")
    ax.set_title("Observed risk and bounds per method (one dot per seed)")
    ax.legend(fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()

