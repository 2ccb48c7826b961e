"""Bad inputs and faults, each with what must happen: one list serves the tests and the report.

Each case is ``Case(name, area, run, expect)``: ``run(tmp)`` performs the action in a scratch
folder and returns a short description of what happened (the error message, or a labelled
result); ``expect`` is a regular expression that description must match.
``tests/test_reliability.py`` asserts every case; ``scripts/reliability_report.py`` runs the same
list and writes ``reports/reliability.md``.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cmkd_bounds import names
from cmkd_bounds.app.results import read_bound

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Case:
    name: str
    area: str
    run: object
    expect: str
    slow: bool = False  # longer than a few seconds: in the test suite's slow run only


def _err(fn):
    """Run ``fn``; return ``ERROR <type>: <message>`` or ``OK <result>``."""
    try:
        return f"OK {fn()}"
    except Exception as e:  # noqa: BLE001 - the point is to show what the user sees
        return f"ERROR {type(e).__name__}: {e}"


def cli(*args, cwd=None) -> str:
    r = subprocess.run(
        [sys.executable, "-m", "cmkd_bounds", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=cwd or ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=600,
    )
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    traceback = "Traceback" in r.stderr
    return f"exit {r.returncode}; stderr lines {len(lines)}; traceback {traceback}; {lines[-1] if lines else ''}"


def synthetic_bundle(path: Path, **override) -> Path:
    from training.synthetic import SyntheticWorld

    fs = SyntheticWorld(num_classes=3, feature_shift=0.5, seed=1).feature_set(120, 90, np.random.default_rng(0),
                                                                               with_calibration=False)
    arrays = {k: v for k, v in fs.__dict__.items() if v is not None}
    arrays.update(override)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def _meta(role="teacher"):
    from training.checkpoint import CheckpointMeta

    return CheckpointMeta(role=role, spec={}, modality="vector", modality_name="t", dataset="synthetic", swap=False,
                          split_seed=0, feat_dim=3, cost="l2", method="ce", protocol=None, config={}, data={})


def tiny_checkpoint(tmp: Path) -> Path:
    from training.checkpoint import save_checkpoint
    from training.models import Model

    model = Model({"arch": "mlp", "input_shape": [4], "feat_dim": 3, "num_classes": 2})
    return save_checkpoint(tmp / "ok.safetensors", model, _meta())


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/cmkd_reliability_pwned",))


# ----------------------------------------------------------------------------- file cases
def ckpt_missing(tmp):
    from training.checkpoint import load_model

    return _err(lambda: load_model(tmp / "nope.safetensors"))


def ckpt_empty(tmp):
    from training.checkpoint import load_model

    (tmp / "e.safetensors").write_bytes(b"")
    return _err(lambda: load_model(tmp / "e.safetensors"))


def ckpt_truncated(tmp):
    from training.checkpoint import load_model

    data = tiny_checkpoint(tmp).read_bytes()
    (tmp / "t.safetensors").write_bytes(data[: len(data) // 2])
    return _err(lambda: load_model(tmp / "t.safetensors"))


def ckpt_corrupted(tmp):
    from training.checkpoint import load_model

    data = bytearray(tiny_checkpoint(tmp).read_bytes())
    data[8:40] = b"\x00" * 32
    (tmp / "c.safetensors").write_bytes(bytes(data))
    return _err(lambda: load_model(tmp / "c.safetensors"))


def ckpt_pickle(tmp):
    from training.checkpoint import load_model

    (tmp / "p.safetensors").write_bytes(pickle.dumps(_Evil()))
    out = _err(lambda: load_model(tmp / "p.safetensors"))
    return out + ("; code ran" if Path("/tmp/cmkd_reliability_pwned").exists() else "; no code ran")


def ckpt_wrong_kind(tmp):
    from training.checkpoint import load_model

    return _err(lambda: load_model(tiny_checkpoint(tmp), expect_role="student"))


def ckpt_nan_weights(tmp):
    import torch

    from training.checkpoint import load_model, save_checkpoint
    from training.models import Model

    m = Model({"arch": "mlp", "input_shape": [4], "feat_dim": 3, "num_classes": 2})
    with torch.no_grad():
        m.classifier.weight[0, 0] = float("nan")
    return _err(lambda: load_model(save_checkpoint(tmp / "n.safetensors", m, _meta())))


def bundle_case(**override):
    def run(tmp):
        from cmkd_bounds.app.bundle import feature_set_from_bundle, load_bundle

        f = synthetic_bundle(tmp / "b.npz", **override)
        return _err(lambda: type(feature_set_from_bundle(load_bundle(f))).__name__)

    return run


def bundle_bytes(data: bytes):
    def run(tmp):
        from cmkd_bounds.app.bundle import load_bundle

        (tmp / "b.npz").write_bytes(data)
        return _err(lambda: load_bundle(tmp / "b.npz"))

    return run


def bundle_truncated(tmp):
    from cmkd_bounds.app.bundle import load_bundle

    data = synthetic_bundle(tmp / "full.npz").read_bytes()
    (tmp / "b.npz").write_bytes(data[: len(data) // 3])
    return _err(lambda: load_bundle(tmp / "b.npz"))


def bundle_pickle(tmp):
    from cmkd_bounds.app.bundle import load_bundle

    np.savez(tmp / "b.npz", teacher_z=np.array([_Evil()], dtype=object))
    out = _err(lambda: load_bundle(tmp / "b.npz"))
    return out + ("; code ran" if Path("/tmp/cmkd_reliability_pwned").exists() else "; no code ran")


# ----------------------------------------------------------------------------- numeric cases
def w1_case(x, y, **kw):
    def run(tmp):
        from cmkd_bounds.wasserstein import w1_bracket, w1_exact

        def go():
            e = w1_exact(x, y)
            b = w1_bracket(x, y, **kw)
            ok = b.lower - 1e-9 * (1 + abs(e.value)) <= e.value <= b.upper + 1e-9 * (1 + abs(e.value))
            return (
                f"exact {e.value:.6g} ({e.kind}); bracket [{b.lower:.6g}, {b.upper:.6g}] contains exact: {ok}; "
                f"converged {b.diagnostics['converged']}"
            )

        return _err(go)

    return run


def assemble_case(transform):
    def run(tmp):
        from cmkd_bounds.theorem import FeatureSet, assemble
        from training.synthetic import SyntheticWorld

        def go():
            w = SyntheticWorld(num_classes=3, seed=2)
            rng = np.random.default_rng(0)
            zT, yT = w.sample_latent("teacher", 60, rng)
            zS, yS = w.sample_latent("student", 60, rng)
            W, b = w.bayes_head("teacher")
            zT, zS = transform(zT), transform(zS)
            r = assemble(FeatureSet(zT, yT, zS, yS, W, b, W, b), posterior="true", rate_repeats=2)
            vals = [t.value for t in r.terms] + [t.value for t in r.bounds.values()]
            finite = all(np.isfinite(v) for v in vals)
            asym = r.bounds[names.ASYMPTOTIC_FEATURE]
            return f"all terms finite: {finite}; asymptotic {asym.value:.4g} ({asym.kind})"

        return _err(go)

    return run


def huge_dense(tmp):
    from cmkd_bounds.wasserstein import w1_exact

    return _err(lambda: w1_exact(np.zeros((60000, 2)), np.ones((60000, 2))))


def huge_auto(tmp):
    from cmkd_bounds.wasserstein import wasserstein1

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(6000, 3)), rng.normal(size=(6000, 3)) + 1
    r = wasserstein1(x, y, reg=0.05, max_iter=3, max_dense_bytes=2**26)
    return f"OK method {r.method}, blockwise {r.diagnostics['blockwise']}, [{r.lower:.4f}, {r.upper:.4f}]"


def fp32_tol(tmp):
    import torch

    from cmkd_bounds.wasserstein import w1_bracket

    rng = np.random.default_rng(0)
    r = w1_bracket(rng.normal(size=(30, 2)), rng.normal(size=(30, 2)), reg=0.05, tol=1e-15, iter_dtype=torch.float32)
    return (
        f"OK tolerance raised to {r.diagnostics['tol']:.2e}; iterations {r.diagnostics['iterations']}; converged "
        f"{r.diagnostics['converged']}"
    )


# ----------------------------------------------------------------------------- outputs and training
def noncertified(tmp):
    f = synthetic_bundle(tmp / "b.npz")
    r = subprocess.run([sys.executable, "-m", "cmkd_bounds", "evaluate", "--features", str(f), "--out", str(tmp / "o"),
                        "--cost", "cosine", "--quiet"], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": str(ROOT)})
    d = read_bound(tmp / "o")
    md = (tmp / "o" / "report.md").read_text()
    cert = d["bounds"][d[names.BOUND_CERTIFIED]["form"]]
    return (f"exit {r.returncode}; paper form {d['bounds'][names.ASYMPTOTIC_FEATURE]['kind']}; certified form uses "
            f"{cert['diagnostics'].get('transport', 'class metrics')}; "
            f"report.md NOT CERTIFIED: {'NOT CERTIFIED' in md}; console NOT CERTIFIED: {'NOT CERTIFIED' in r.stdout}")


def interrupted_report(tmp):
    from unittest import mock

    from cmkd_bounds.app import evaluate
    from cmkd_bounds.settings import BoundSettings

    f = synthetic_bundle(tmp / "b.npz")
    evaluate.evaluate_bundle(f, tmp / "o", BoundSettings(rate_repeats=2), quiet=True)
    before = (tmp / "o" / "bound.json").read_text()

    def boom(*a, **k):
        raise RuntimeError("simulated crash while writing the report")

    with mock.patch.object(evaluate, "write_report", boom):
        msg = _err(lambda: evaluate.evaluate_bundle(f, tmp / "o", BoundSettings(cost="l1", rate_repeats=2),
                                                    overwrite=True, quiet=True))
    intact = (tmp / "o" / "bound.json").read_text() == before
    leftovers = [p.name for p in tmp.iterdir() if p.name.startswith(".")]
    return (
        f"{msg if 'ERROR' in msg else 'interrupted'}; previous report intact: {intact}; temporary leftovers: "
        f"{len(leftovers)}"
    )


def existing_out(tmp):
    f = synthetic_bundle(tmp / "b.npz")
    (tmp / "o").mkdir()
    (tmp / "o" / "old.txt").write_text("x")
    return cli("evaluate", "--features", f, "--out", tmp / "o")


def nan_loss(tmp):
    from unittest import mock

    from training import loop
    from training.config import TrainConfig

    real = loop.make_method

    def poisoned(cfg, *a, **k):
        m = real(cfg, *a, **k)
        step = m.step

        def bad(b):
            out = step(b)
            return {**out, "loss": float("nan")} if m.steps > 50 else out

        m.step = bad
        return m

    cfg = TrainConfig(
        role="teacher", dataset="synthetic", feat_dim=8, batch_size=32, epochs=3, out=str(tmp / "r"), quiet=True
    )
    with mock.patch.object(loop, "make_method", poisoned):
        return _err(lambda: loop.train(cfg))


CASES = [
    Case("missing checkpoint", "files", ckpt_missing, r"CheckpointError: .*no such checkpoint"),
    Case("empty checkpoint", "files", ckpt_empty, r"CheckpointError: .*the file is empty"),
    Case("truncated checkpoint", "files", ckpt_truncated, r"CheckpointError: .*(truncated|corrupted)"),
    Case("corrupted checkpoint header", "files", ckpt_corrupted, r"CheckpointError: .*(truncated|corrupted)"),
    Case("pickle in place of a checkpoint", "files", ckpt_pickle, r"refused .*no code ran"),
    Case(
        "teacher checkpoint where a student is expected",
        "files",
        ckpt_wrong_kind,
        r"a teacher checkpoint where a student is expected",
    ),
    Case("NaN in checkpoint weights", "numbers", ckpt_nan_weights, r"contains NaN or Inf"),
    Case(
        "missing bundle",
        "files",
        lambda tmp: _err(lambda: __import__("cmkd_bounds.app.bundle").app.bundle.load_bundle(tmp / "none.npz")),
        r"BundleError: .*no such file",
    ),
    Case("empty bundle", "files", bundle_bytes(b""), r"BundleError: .*empty"),
    Case("truncated bundle", "files", bundle_truncated, r"BundleError: .*truncated or corrupted"),
    Case(
        "corrupted bundle", "files", bundle_bytes(b"PK\x03\x04garbage" * 10), r"BundleError: .*truncated or corrupted"
    ),
    Case("pickle inside a bundle", "files", bundle_pickle, r"BundleError: .*pickle.*no code ran"),
    Case("bundle missing an array", "files", bundle_case(student_b=None), r"missing array\(s\) student_b"),
    Case(
        "bundle with a wrong dtype",
        "files",
        bundle_case(teacher_z=np.ones((120, 2), dtype=np.int64)),
        r"teacher_z must be a floating-point array",
    ),
    Case(
        "bundle with string labels",
        "files",
        bundle_case(student_y=np.array(["a"] * 90)),
        r"student_y must hold integer labels",
    ),
    Case(
        "mismatched feature sizes",
        "files",
        bundle_case(student_z=np.zeros((90, 5)), student_W=np.zeros((3, 5))),
        r"differ in size: 2 vs 5",
    ),
    Case("labels outside 0..C-1", "files", bundle_case(student_y=np.full(90, 7)), r"labels outside -1..2"),
    Case(
        "head class count differs from the labels'",
        "files",
        bundle_case(student_W=np.zeros((4, 2)), student_b=np.zeros(4)),
        r"disagree on the number of classes",
    ),
    Case("NaN in features", "numbers", bundle_case(student_z=np.full((90, 2), np.nan)), r"NaN or Inf"),
    Case("Inf in head weights", "numbers", bundle_case(teacher_W=np.full((3, 2), np.inf)), r"NaN or Inf"),
    Case(
        "NaN in user inputs (arrays dataset)",
        "numbers",
        lambda tmp: _err(
            lambda: (
                np.savez(
                    tmp / "a.npz",
                    teacher_x=np.array([[np.nan]]),
                    teacher_y=np.array([0]),
                    student_x=np.zeros((1, 1)),
                    student_y=np.array([0]),
                ),
                __import__("training.arrays").arrays.load_arrays(tmp / "a.npz"),
            )
        ),
        r"NaN or Inf in 1 item\(s\); every input must be finite",
    ),
    Case(
        "empty cloud",
        "numbers",
        w1_case(np.zeros((0, 2)), np.zeros((3, 2))),
        r"ValueError: x: the point cloud is empty",
    ),
    Case(
        "a single point",
        "numbers",
        w1_case(np.array([[1.0, 2.0]]), np.array([[4.0, 6.0]])),
        r"exact 5 .*contains exact: True",
    ),
    Case(
        "all points identical (zero diameter)",
        "numbers",
        assemble_case(lambda z: np.zeros_like(z) + 1.0),
        r"all terms finite: True",
    ),
    Case(
        "duplicated points",
        "numbers",
        w1_case(np.repeat([[0.0, 0.0], [1.0, 1.0]], 20, 0), np.repeat([[0.0, 1.0]], 7, 0)),
        r"contains exact: True",
    ),
    Case(
        "huge scale (1e6)",
        "numbers",
        w1_case(np.arange(20.0).reshape(10, 2) * 1e6, np.arange(20.0).reshape(10, 2) * 1e6 + 3e6),
        r"exact 4.24264e\+06 .*contains exact: True",
    ),
    Case(
        "tiny scale (1e-6)",
        "numbers",
        w1_case(np.arange(20.0).reshape(10, 2) * 1e-6, np.arange(20.0).reshape(10, 2) * 1e-6 + 3e-6),
        r"exact 4.24264e-06 .*contains exact: True",
    ),
    Case(
        "Sinkhorn at a regularisation where the plain domain underflows",
        "numbers",
        w1_case(
            np.random.default_rng(0).normal(size=(40, 3)),
            np.random.default_rng(1).normal(size=(40, 3)),
            reg=1e-7,
            max_iter=30,
        ),
        r"contains exact: True; converged (True|False)",
    ),
    Case("float32 with a tolerance below float32 precision", "numbers", fp32_tol, r"tolerance raised to 1.19e-06"),
    Case(
        "cloud too large for a dense cost matrix (exact)",
        "sizes",
        huge_dense,
        r"MemoryError: exact W1 at n=60000, m=60000 needs about 53.6 GiB",
    ),
    Case("cloud too large for a dense cost matrix (auto)", "sizes", huge_auto, r"method bracket, blockwise True",
         slow=True),
    Case(
        "bound under a non-metric cost",
        "costs",
        noncertified,
        r"exit 0; paper form estimated; certified form uses logit_\w+; report.md NOT CERTIFIED: True; console NOT "
        r"CERTIFIED: True",
    ),
    Case(
        "interrupted evaluate", "outputs", interrupted_report, r"previous report intact: True; temporary leftovers: 0"
    ),
    Case(
        "existing output folder without --overwrite",
        "outputs",
        existing_out,
        r"exit 2; stderr lines 1; traceback False; .*pass --overwrite",
    ),
    Case(
        "NaN loss during training",
        "training",
        nan_loss,
        r"TrainingDiverged: non-finite loss nan at epoch 2, step \d+, batch \d+; "
        r"last good checkpoint: .*last.safetensors",
    ),
    Case(
        "unknown CLI option",
        "cli",
        lambda tmp: cli("evaluate", "--out", tmp / "o", "--bogus"),
        r"exit 2; stderr lines 1; traceback False; .*unrecognized arguments: --bogus",
    ),
    Case(
        "missing dataset folder",
        "cli",
        lambda tmp: cli(
            "train", "--role", "teacher", "--dataset", "ave", "--data-dir", tmp / "none", "--out", tmp / "r"
        ),
        r"exit 2; stderr lines 1; traceback False; .*ave: data folder .* not found",
    ),
    Case(
        "--device cuda on a machine without CUDA",
        "cli",
        lambda tmp: cli("train", "--role", "teacher", "--dataset", "synthetic", "--device", "cuda", "--out", tmp / "r"),
        r"exit 2; stderr lines 1; traceback False; .*no CUDA device",
    ),
    Case(
        "--debug shows the traceback",
        "cli",
        lambda tmp: cli("--debug", "evaluate", "--features", tmp / "none.npz", "--out", tmp / "o"),
        r"exit 1; .*traceback True",
    ),
]
