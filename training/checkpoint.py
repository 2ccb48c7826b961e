"""Self-describing checkpoints that load without unpickling anything.

A checkpoint is one ``.safetensors`` file: the model's tensors plus a ``cmkd`` metadata entry, a
JSON document with ``format``, ``kind`` (teacher | student), ``spec`` (rebuilds the model),
``modality``, ``dataset``, ``protocol``, ``split_seed``, ``feat_dim``, ``cost``, ``method``, the
full training ``config``, ``metrics`` and ``epoch``. :func:`load_model` needs nothing else.

Resumable optimiser state lives beside it in ``state.pt`` (tensors and numbers only), loaded with
``torch.load(weights_only=True)`` so no code can run from it.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from cmkd_bounds.atomic import write_bytes
from training.models import Model

FORMAT = "cmkd-bounds/checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


def save_checkpoint(path, model: Model, meta: dict) -> Path:
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    info = {"format": FORMAT, "spec": model.spec, **meta}
    return write_bytes(path, st_save(tensors, metadata={"cmkd": json.dumps(info)}))


def read_checkpoint(path) -> tuple[dict, dict[str, torch.Tensor]]:
    """``(meta, tensors)`` of a checkpoint; a clear error for anything that is not one of ours."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint")
    data = path.read_bytes()
    if not data:
        raise CheckpointError(f"{path}: the file is empty")
    header_len = int.from_bytes(data[:8], "little") if len(data) >= 8 else -1
    if not (0 < header_len <= len(data) - 8 and data[8:9] == b"{"):
        if data[:1] == b"\x80" or data[:2] == b"PK":
            raise CheckpointError(f"{path}: a pickle/torch.save file, refused (unpickling can run code); "
                                  "checkpoints are .safetensors")
        raise CheckpointError(f"{path}: not a safetensors checkpoint (truncated or corrupted header)")
    try:
        header = json.loads(data[8 : 8 + header_len])
        tensors = st_load(data)
    except (SafetensorError, ValueError, json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: truncated or corrupted checkpoint ({e})") from e
    raw = header.get("__metadata__", {}).get("cmkd")
    if raw is None:
        raise CheckpointError(f"{path}: a safetensors file without cmkd-bounds metadata")
    meta = json.loads(raw)
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: unknown checkpoint format {meta.get('format')!r}")
    return meta, tensors


def load_model(path, expect_kind: str | None = None, device="cpu") -> tuple[Model, dict]:
    """Rebuild the model from the checkpoint alone; ``expect_kind`` guards teacher/student mix-ups."""
    meta, tensors = read_checkpoint(path)
    if expect_kind and meta.get("kind") != expect_kind:
        raise CheckpointError(f"{path}: a {meta.get('kind')} checkpoint where a {expect_kind} is expected")
    model = Model(meta["spec"])
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
