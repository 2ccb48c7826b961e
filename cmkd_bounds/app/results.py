"""The one home of evaluation results: ``bound.json`` written and read, a run's files read, a summary row built.

- :func:`write_bound_json` / :func:`read_bound`: the report folder's ``bound.json`` (standard JSON: Inf and
  NaN are written as strings); its layout is :meth:`cmkd_bounds.bound_report.BoundReport.to_dict` plus the
  ``source`` the evaluation came from and the layout's version :data:`SCHEMA`. Reports of an earlier
  layout are read in the current one (their gap chains called a step's place ``kind``).
- :func:`is_current`: the existing evaluation of a checkpoint, when it is complete, of the current layout,
  made of this very checkpoint (its SHA-256) and with these settings; ``None`` otherwise.
- :func:`run_result` / :func:`run_metrics`: a training run's ``result.json`` and ``metrics.jsonl``
  (written by :class:`training.run_folder.RunFolder`).
- :func:`summary_row`: one row of ``summary.csv`` (hyperparameters, observations, every form, the key
  terms); :data:`SUMMARY_COLUMNS`, :data:`TERM_COLUMNS`, :data:`LABEL_FREE` and :data:`BASELINES` are the
  column lists the tables and ``correlate`` use.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from cmkd_bounds import names
from cmkd_bounds.atomic import file_sha256, write_text

BOUND_JSON = "bound.json"
SCHEMA = 2  # the layout of bound.json; 1: before gap-chain steps said ``part`` (they said ``kind``)
ITEMS = "items.npz"
REPORT_FILES = ("bound.json", "terms.csv", "report.md", ITEMS, "bound_gap.png", "gap_waterfall.png", "rates.png",
                "lipschitz.png")
ITEM_TYPES = {"prediction": np.int16, "label": np.int16, "labelled": np.bool_, "loss_clipped": np.float32,
              "error": np.float32}  # anything else (the surrogates) as float32

# the terms a summary row carries, and the columns correlate reads
TERM_COLUMNS = (names.TEACHER_TERM, names.STUDENT_TERM, names.LABEL_ALIGNMENT, names.LABEL_ALIGNMENT_CLIPPED,
                names.CLASS_DELTA, names.TRANSPORT_FEATURE, names.TRANSPORT_FEATURE_TRUNCATED,
                names.TRANSPORT_LOGIT_L2, names.TRANSPORT_LOGIT_OSC, names.TAU_FEATURE, names.TAU_LOWER,
                *names.PREDICTORS)
LABEL_FREE = (names.TEACHER_TERM, names.STUDENT_TERM, names.TRANSPORT_FEATURE, names.TRANSPORT_FEATURE_TRUNCATED,
              names.TRANSPORT_LOGIT_L2, names.TRANSPORT_LOGIT_OSC, names.W1_FEATURE, names.TAU_FEATURE,
              names.TAU_LOWER, *names.PREDICTORS, "predictor_gde")
PREDICTOR_COLUMNS = (*names.PREDICTORS, "predictor_gde")  # label-free error predictors (GDE: added by correlate)
BASELINES = ("teacher_head_on_student_error01", "train_ce", names.bound_column(names.HELD_OUT_KL))
SUMMARY_COLUMNS = ("run", "method", "labels_per_class", "seed", "test_acc", "observed_risk", "observed_error01",
                   *(names.bound_column(f) for f in (names.ASYMPTOTIC_SHARPEST, names.ASYMPTOTIC_FEATURE,
                                                     names.CERTIFIED_MARGINAL, names.HELD_OUT_KL,
                                                     names.PAPER_STYLE)))


# ----------------------------------------------------------------------------- bound.json
def _json_default(o):
    if isinstance(o, (np.floating, np.integer, np.bool_)):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(type(o))


def clean(o):
    """JSON has no Inf/NaN: write them as strings so the file stays standard JSON."""
    if isinstance(o, dict):
        return {k: clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [clean(v) for v in o]
    if isinstance(o, (float, np.floating)) and not math.isfinite(o):
        return str(float(o))
    return o


def to_json(d: dict) -> str:
    return json.dumps(clean(d), indent=2, default=_json_default, allow_nan=False) + "\n"


def bound_json(report, source: dict | None = None) -> str:
    """The text of ``bound.json`` for a :class:`~cmkd_bounds.bound_report.BoundReport`."""
    d = report.to_dict()
    if source:
        d["source"] = source
    d["schema"] = SCHEMA
    return to_json(d)


def write_bound_json(report, folder: str | Path, source: dict | None = None) -> Path:
    return write_text(Path(folder) / BOUND_JSON, bound_json(report, source))


def write_items(report, folder: str | Path) -> Path:
    """``items.npz``: the per-item arrays of the student's evaluation items (predictions, labels, which were labelled,
    clipped losses and errors where known, the label-free surrogates), compressed and in small types."""
    import io

    from cmkd_bounds.atomic import write_bytes

    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v).astype(ITEM_TYPES.get(k, np.float32)) for k, v in
                                report.items.items()})
    return write_bytes(Path(folder) / ITEMS, buf.getvalue())


def read_items(folder: str | Path) -> dict[str, np.ndarray]:
    """The per-item arrays of a report folder (:func:`write_items`)."""
    from cmkd_bounds.atomic import read_npz

    return read_npz(Path(folder) / ITEMS, "an items file", ValueError)


def read_bound(folder: str | Path) -> dict:
    """The ``bound.json`` of a report folder."""
    f = Path(folder) / BOUND_JSON
    if not f.exists():
        raise FileNotFoundError(f"{folder}: no {BOUND_JSON} (not a report folder written by cmkd-bounds evaluate)")
    d = json.loads(f.read_text())
    if d.get("schema", 1) == 1:
        for chain in d.get("gap_explained", {}).values():
            for step in chain:
                if "kind" in step:
                    step["part"] = step.pop("kind")
    return d


def is_current(folder: str | Path, checkpoint: str | Path, settings) -> dict | None:
    """The report in ``folder`` when every file of it exists and it was made of ``checkpoint`` (same SHA-256) with
    ``settings`` (the settings asked for); otherwise ``None``."""
    folder = Path(folder)
    if not all((folder / x).exists() for x in REPORT_FILES):
        return None
    d = read_bound(folder)
    src = d.get("source", {})
    same = (d.get("schema") == SCHEMA and src.get("student_sha256") == file_sha256(checkpoint)
            and src.get("settings") == json.loads(json.dumps(settings.as_dict())))
    return d if same else None


# ----------------------------------------------------------------------------- run files
def run_result(run: str | Path) -> dict:
    """A training run's ``result.json`` (it exists once the run has finished)."""
    return json.loads((Path(run) / "result.json").read_text())


def run_metrics(run: str | Path) -> list[dict]:
    """A training run's ``metrics.jsonl``: one record per epoch."""
    f = Path(run) / "metrics.jsonl"
    return [json.loads(line) for line in f.read_text().splitlines()] if f.exists() else []


def run_finished(run: str | Path) -> bool:
    return (Path(run) / "result.json").exists()


# ----------------------------------------------------------------------------- the summary table
def summary_row(name: str, checkpoint: str | Path, report: dict) -> dict:
    """One row of ``summary.csv``: the run's hyperparameters, observations, every form and the key terms."""
    src = report.get("source", {})
    cfg = src.get("config", {})
    run = Path(checkpoint).parent
    res = run_result(run) if run_finished(run) else {}
    hist = run_metrics(run)
    terms = {t["name"]: t["value"] for t in report["terms"]}
    direction = src.get("direction") or ("audio->image" if cfg.get("swap") else "image->audio")  # layout 1: avmnist
    row = {"run": name, "data": src.get("data", cfg.get("dataset")), "direction": direction,
           "dataset": cfg.get("dataset"), "method": cfg.get("method"), "protocol": cfg.get("protocol"),
           "labels_per_class": cfg.get("labels_per_class", 0), "seed": cfg.get("seed"),
           "lambda_fa": cfg.get("lambda_fa"), "inner_lr": cfg.get("inner_lr"), "n1": cfg.get("n1"),
           "test_acc": res.get("test_acc"), "train_ce": hist[-1].get("ce") if hist else None,
           "steer_cos": res.get("steer_cos_mean"),
           "observed_risk": report["observed_risk"], "observed_risk_clipped": report["observed_risk_clipped"],
           "observed_error01": report["observed_error01"]}
    for k, b in report["bounds"].items():
        row[names.bound_column(k)] = b["value"]
    for k in TERM_COLUMNS:
        row[k] = terms.get(k)
    row[names.W1_FEATURE] = next((t["w1"] for t in report.get("transports", []) if t["name"] == names.FEATURE), None)
    row["teacher_head_on_student_error01"] = report["observed"].get("teacher_head_on_student_error01")
    return row


def best_certified(row: dict) -> str:
    """The certified transfer form with the smallest value in a summary row."""
    cands = [k for k in names.CERTIFIED_TRANSFER if row.get(names.bound_column(k)) is not None]
    return min(cands, key=lambda k: row[names.bound_column(k)])
