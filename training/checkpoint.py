"""Self-describing checkpoints that load without unpickling anything.

A checkpoint is one ``.safetensors`` file: the model's tensors plus a ``cmkd`` metadata entry, the
JSON form of :class:`CheckpointMeta` (model spec, modality, dataset and its fingerprint, split seed,
feature size, cost, method, protocol, the full training config, the teacher it was taught by, the
epoch and metrics). :func:`load_model` needs nothing else, and :func:`check_compatible` is the one
place where a teacher and a student are checked against each other.

Resumable optimiser state lives beside it in ``state.pt`` (tensors and numbers only), loaded with
``torch.load(weights_only=True)`` so no code can run from it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from cmkd_bounds.atomic import write_bytes
from training.models import Model

FORMAT = "cmkd-bounds/checkpoint/2"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True, kw_only=True)
class CheckpointMeta:
    """What a checkpoint says about itself.

    ``role`` is ``teacher`` or ``student``; ``data`` is the data fingerprint
    (:func:`training.datasets.fingerprint`); ``teacher`` (students only) holds the teacher checkpoint's
    absolute path, its path relative to this checkpoint's folder and its SHA-256, so it is found from
    any working directory and a replaced teacher is noticed. (Checkpoints written before the field was
    renamed call it ``kind``; they are read alike.)
    """

    role: str
    spec: dict
    modality: str
    modality_name: str
    dataset: str
    swap: bool
    split_seed: int
    feat_dim: int
    cost: str
    method: str
    protocol: str | None
    config: dict
    data: dict
    teacher: dict | None = None
    epoch: int = 0
    metrics: dict = field(default_factory=dict)
    num_labelled: int = 0
    pairing: dict = field(default_factory=dict)
    format: str = FORMAT

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, raw: str, path) -> CheckpointMeta:
        d = json.loads(raw)
        if "kind" in d and "role" not in d:  # the field's earlier name
            d["role"] = d.pop("kind")
        if d.get("format") != FORMAT:
            raise CheckpointError(f"{path}: checkpoint format {d.get('format')!r}, this version reads {FORMAT!r} "
                                  "(retrain with this version)")
        known = {f.name for f in dataclasses.fields(cls)}
        missing = [f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING
                   and f.default_factory is dataclasses.MISSING and f.name not in d]
        if missing:
            raise CheckpointError(f"{path}: checkpoint metadata lacks {', '.join(missing)}")
        return cls(**{k: v for k, v in d.items() if k in known})


def check_compatible(teacher: CheckpointMeta, student: CheckpointMeta, what: str = "teacher and student") -> None:
    """The one compatibility check: same benchmark, direction, splits, data and feature space."""
    if teacher.role != "teacher" or student.role != "student":
        raise CheckpointError(f"{what}: expected a teacher and a student checkpoint, got {teacher.role} and "
                              f"{student.role}")
    for key in ("dataset", "swap", "split_seed", "feat_dim"):
        a, b = getattr(teacher, key), getattr(student, key)
        if a != b:
            raise CheckpointError(f"{what} disagree on {key}: {a!r} vs {b!r} (the student must see the teacher's "
                                  "benchmark, direction, splits and feature space)")
    from training.datasets import same_data

    if not same_data(teacher.data, student.data):
        raise CheckpointError(f"{what} were trained on different data: {teacher.data} vs {student.data}")
    ts, ss = bool(teacher.config.get("standardize", False)), bool(student.config.get("standardize", False))
    if ts != ss:  # the student's setting prepares the frozen teacher's inputs too
        raise CheckpointError(f"{what} disagree on --standardize ({'on' if ts else 'off'} for the teacher, "
                              f"{'on' if ss else 'off'} for the student): the teacher would see inputs prepared "
                              "otherwise than in its training; train both with the same setting")


def teacher_reference(teacher_path) -> dict:
    """How a student checkpoint records its teacher (resolved in :func:`resolve_teacher`)."""
    from cmkd_bounds.atomic import file_sha256

    p = Path(teacher_path).resolve()
    return {"path": str(p), "sha256": file_sha256(p)}


def resolve_teacher(student: CheckpointMeta, student_path) -> Path:
    """The teacher checkpoint a student was taught by, found from any working directory."""
    if student.role != "student":  # a teacher has no teacher to look for: say what the file is
        raise CheckpointError(f"{student_path}: a {student.role} checkpoint where a student is expected")
    ref = student.teacher or {}
    here = Path(student_path).resolve().parent
    cands = [Path(ref["path"])] if ref.get("path") else []
    if ref.get("relative"):
        cands.append(here / ref["relative"])
    for c in cands:
        if c.is_file():
            return c
    raise CheckpointError(f"{student_path}: its teacher checkpoint is not found (looked at "
                          f"{', '.join(map(str, cands)) or 'nothing recorded'}); give it with --teacher")


def save_checkpoint(path, model: Model, meta: CheckpointMeta) -> Path:
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if meta.teacher and meta.teacher.get("path"):
        import os

        rel = os.path.relpath(meta.teacher["path"], Path(path).resolve().parent)
        meta = dataclasses.replace(meta, teacher={**meta.teacher, "relative": rel})
    meta = dataclasses.replace(meta, spec=model.spec)
    return write_bytes(path, st_save(tensors, metadata={"cmkd": meta.to_json()}))


def read_checkpoint(path) -> tuple[CheckpointMeta, dict[str, torch.Tensor]]:
    """``(meta, tensors)`` of a checkpoint; a clear error for anything that is not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    data = path.read_bytes()
    if not data:
        raise CheckpointError(f"{path}: the file is empty")
    header_len = int.from_bytes(data[:8], "little") if len(data) >= 8 else -1
    if not (0 < header_len <= len(data) - 8 and data[8:9] == b"{"):
        if data[:1] == b"\x80" or (data[:2] == b"PK" and b"data.pkl" in data[:4096]):
            raise CheckpointError(f"{path}: a pickle/torch.save file, refused (unpickling can run code); "
                                  "checkpoints are .safetensors")
        if data[:2] == b"PK":
            raise CheckpointError(f"{path}: a zip archive (an .npz?), not a checkpoint; checkpoints are .safetensors "
                                  "written by cmkd-bounds train")
        raise CheckpointError(f"{path}: not a safetensors checkpoint (truncated or corrupted header)")
    try:
        header = json.loads(data[8 : 8 + header_len])
        tensors = st_load(data)
    except (SafetensorError, ValueError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: truncated or corrupted checkpoint ({e})") from e
    raw = header.get("__metadata__", {}).get("cmkd")
    if raw is None:
        raise CheckpointError(f"{path}: a safetensors file without cmkd-bounds metadata")
    return CheckpointMeta.from_json(raw, path), tensors


def load_model(path, expect_role: str | None = None, device="cpu") -> tuple[Model, CheckpointMeta]:
    """Rebuild the model from the checkpoint alone; ``expect_role`` guards teacher/student mix-ups."""
    meta, tensors = read_checkpoint(path)
    if expect_role and meta.role != expect_role:
        raise CheckpointError(f"{path}: a {meta.role} checkpoint where a {expect_role} is expected")
    model = Model(meta.spec)
    try:
        model.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: weights do not match the stored model spec ({e})") from e
    for name, t in tensors.items():
        if t.is_floating_point() and not torch.isfinite(t).all():
            raise CheckpointError(f"{path}: tensor {name} contains NaN or Inf")
    return model.to(device).eval(), meta


def save_state(path, state: dict) -> Path:
    import io

    buf = io.BytesIO()
    torch.save(state, buf)
    return write_bytes(path, buf.getvalue())


def load_state(path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure means the same: cannot resume from it
        raise CheckpointError(f"{path}: cannot load training state ({type(e).__name__}: {e})") from e
