"""Training: methods lower their loss, FA is order-invariant, checkpoints are safe and resumable."""

import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from training.alignment import feature_alignment, kappa_official, sinkhorn_log
from training.checkpoint import CheckpointError, load_model, read_checkpoint
from training.config import TrainConfig
from training.loop import train
from training.methods import Batch, make_method
from training.models import Model

SYN = dict(dataset="synthetic", feat_dim=8, batch_size=32, quiet=True)


def tiny_batch(seed=0, n=48, d=5, k=8, C=4):
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % C
    x = torch.randn(n, d, generator=g) + y[:, None].float()
    zt = torch.randn(n, k, generator=g) + 2 * y[:, None].float()
    return Batch(x=x, y=y, zt=zt, tlogits=torch.randn(n, C, generator=g) * 3)


@pytest.mark.parametrize("method", ["ce", "vanilla_kd", "feature_kd", "joint", "ucmkd"])
def test_every_method_lowers_its_loss(method):
    torch.manual_seed(0)
    cfg = TrainConfig(method=method, protocol="fixed_class", teacher="t", lr=1e-2, feat_dim=8, steer_every=3)
    model = Model({"arch": "mlp", "input_shape": [5], "feat_dim": 8, "num_classes": 4})
    teacher_head = torch.nn.Linear(8, 4).requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    m = make_method(cfg, model, opt, teacher_head=teacher_head)
    b = tiny_batch()
    losses = [m.step(b)["loss"] for _ in range(30)]
    assert np.mean(losses[-5:]) < 0.7 * np.mean(losses[:5])
    if method == "ucmkd":
        out = m.step(b) if m.steps % 3 == 0 else [m.step(b) for _ in range(3 - m.steps % 3)][-1]
        assert -1 <= out["steer_cos"] <= 1 and out["steer_diff_norm"] >= 0


def test_fa_is_invariant_to_sample_order_and_matches_pot():
    import ot

    g = torch.Generator().manual_seed(1)
    zs, zt = torch.randn(40, 6, generator=g), torch.randn(30, 6, generator=g) + 0.5
    fa = feature_alignment(zs, zt, reg=0.1, iters=100)
    fa_perm = feature_alignment(zs[torch.randperm(40, generator=g)], zt[torch.randperm(30, generator=g)])
    assert float(fa) == pytest.approx(float(fa_perm), rel=1e-5)
    C = torch.cdist(zs.double(), zt.double())
    ref = ot.sinkhorn2(torch.full((40,), 1 / 40, dtype=torch.float64), torch.full((30,), 1 / 30, dtype=torch.float64),
                       C, 0.1, method="sinkhorn_log", numItermax=100)
    assert float(fa) == pytest.approx(float(ref), rel=1e-4)
    # the float32 trap: a tolerance below float32 precision is raised, so the loop can stop early
    _, iters = sinkhorn_log(torch.cdist(zs, zt), eps=5.0, iters=1000, tol=1e-12)
    assert iters < 1000


def test_kappa_in_unit_interval():
    k = kappa_official(torch.randn(100, 7) * 10, torch.randint(0, 7, (100,)))
    assert ((k >= 0) & (k <= 1)).all()


@pytest.fixture(scope="module")
def teacher_ckpt(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    train(TrainConfig(role="teacher", epochs=2, out=str(out), **SYN))
    return out / "best.safetensors"


def test_vanilla_kd_refuses_unpaired_protocols(teacher_ckpt, tmp_path):
    for protocol in ("class_resample", "permutation"):
        with pytest.raises(ValueError, match="needs a pairing"):
            train(TrainConfig(method="vanilla_kd", protocol=protocol, teacher=str(teacher_ckpt), epochs=1,
                              out=str(tmp_path / protocol), **SYN))
        assert not (tmp_path / protocol).exists()  # refused before anything is written


def test_checkpoint_round_trip_rebuilds_the_model_alone(teacher_ckpt):
    model, meta = load_model(teacher_ckpt, expect_role="teacher")
    for key in ("spec", "modality", "dataset", "split_seed", "feat_dim", "cost", "method", "config", "metrics", "data"):
        assert getattr(meta, key) is not None
    assert meta.role == "teacher" and meta.feat_dim == 8 and meta.data["dataset"] == "synthetic"
    x = torch.randn(3, *meta.spec["input_shape"])
    again, _ = load_model(teacher_ckpt)
    assert torch.equal(model(x), again(x))
    with pytest.raises(CheckpointError, match="a teacher checkpoint where a student is expected"):
        load_model(teacher_ckpt, expect_role="student")


class _Boom:
    def __reduce__(self):
        return (os.system, ("touch /tmp/cmkd_pwned",))


def test_malicious_pickle_is_refused(tmp_path):
    bad = tmp_path / "evil.safetensors"
    bad.write_bytes(pickle.dumps(_Boom()))
    with pytest.raises(CheckpointError, match="refused"):
        read_checkpoint(bad)
    evil_pt = tmp_path / "evil.pt"
    torch.save({"x": _Boom()}, evil_pt)
    with pytest.raises(CheckpointError):
        read_checkpoint(evil_pt)
    assert not os.path.exists("/tmp/cmkd_pwned")


def test_resume_equals_uninterrupted_run(teacher_ckpt, tmp_path):
    common = dict(method="ucmkd", teacher=str(teacher_ckpt), epochs=3, seed=5, **SYN)
    full = train(TrainConfig(out=str(tmp_path / "full"), **common)).path
    part = tmp_path / "part"
    train(TrainConfig(out=str(part), **{**common, "epochs": 1}))  # "killed" after epoch 1
    cfg = json.loads((part / "config.json").read_text())
    cfg["epochs"] = 3
    train(TrainConfig.from_dict(cfg))  # resumes from state.pt
    a, _ = read_checkpoint(full / "last.safetensors")
    _, wa = read_checkpoint(full / "last.safetensors")
    _, wb = read_checkpoint(part / "last.safetensors")
    assert a.epoch == 3
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def len_train_batches(teacher_ckpt):
    from training.datasets import load_pair

    n = len(load_pair("synthetic").split(0)["train"].student)
    return -(-n // 32)


@pytest.mark.slow
def test_torchrun_two_ranks_keep_identical_weights(teacher_ckpt, tmp_path):
    """Two ranks train identically, resume an interrupted run together and both return a finished one."""
    def run(epochs):
        script = tmp_path / "ddp.py"
        script.write_text(
            "import torch.distributed as dist\n"
            "from training.config import TrainConfig\nfrom training.loop import train\n"
            f"out = train(TrainConfig(method='feature_kd', teacher={str(teacher_ckpt)!r}, epochs={epochs}, "
            f"out={str(tmp_path / 'ddp')!r}, dataset='synthetic', feat_dim=8, batch_size=32, quiet=True))\n"
            "print('RANK_DONE', dist.get_rank(), dist.get_world_size())\n"
        )
        env = {**os.environ, "PYTHONPATH": os.getcwd(), "OMP_NUM_THREADS": "1"}
        r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                            f"--master_port={free_port()}", str(script)], capture_output=True, text=True, env=env,
                           timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        assert r.stdout.count("RANK_DONE") == 2

    run(1)
    (tmp_path / "ddp" / "result.json").unlink()  # as if stopped after the first of two epochs
    run(2)  # both ranks resume from the same state
    result = json.loads((tmp_path / "ddp" / "result.json").read_text())
    assert result["world_size"] == 2 and result["ranks_identical"] is True
    # each rank took half of every epoch's batches
    steps = [json.loads(line)["steps"] for line in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert steps == [-(-len_train_batches(teacher_ckpt) // 2)] * 2
    stamp = (tmp_path / "ddp" / "best.safetensors").stat().st_mtime_ns
    run(2)  # finished: every rank returns it as it is
    assert (tmp_path / "ddp" / "best.safetensors").stat().st_mtime_ns == stamp


def test_multiseed_table_and_evaluate_runs(teacher_ckpt, tmp_path, capsys):
    from cmkd_bounds.app.cli import main
    from cmkd_bounds.app.experiments import multiseed

    table = multiseed(TrainConfig(method="joint", epochs=1, **SYN), [0, 1], tmp_path / "ms", teacher_epochs=1)
    text = table.read_text()
    assert "±" in text and "joint on synthetic" in text
    rows = (tmp_path / "ms" / "table.csv").read_text().splitlines()
    assert len(rows) == 3 and rows[0].startswith("seed,teacher_test_acc,student_test_acc")
    # issue 9 #7: evaluate --runs finds each run's teacher from any working directory
    import os

    here = os.getcwd()
    try:
        os.chdir(tmp_path / "ms" / "seed0")
        assert main(["evaluate", "--runs", str(tmp_path / "ms"), "--out", str(tmp_path / "ev"), "--quiet"]) == 0
    finally:
        os.chdir(here)
    summary = (tmp_path / "ev" / "summary.csv").read_text().splitlines()
    assert len(summary) == 3 and (tmp_path / "ev" / "bound_gap_by_method.png").exists()
    assert (tmp_path / "ev" / "seed0__student" / "bound.json").exists()
    # rerunning resumes: the reports are reused, not recomputed
    mtime = (tmp_path / "ev" / "seed0__student" / "bound.json").stat().st_mtime
    assert main(["evaluate", "--runs", str(tmp_path / "ms"), "--out", str(tmp_path / "ev"), "--quiet"]) == 0
    assert (tmp_path / "ev" / "seed0__student" / "bound.json").stat().st_mtime == mtime
    # issue 23 #10: an unfinished run (no result.json) is left out, and said so, never mixed in with test_acc None
    (tmp_path / "ms" / "seed1" / "student" / "result.json").unlink()
    capsys.readouterr()
    assert main(["evaluate", "--runs", str(tmp_path / "ms"), "--out", str(tmp_path / "ev"), "--quiet"]) == 0
    assert "skipping 1 unfinished run(s) (no result.json): seed1/student" in capsys.readouterr().err
    assert len((tmp_path / "ev" / "summary.csv").read_text().splitlines()) == 2
    assert "Skipped 1 unfinished run(s)" in (tmp_path / "ev" / "summary.md").read_text()


def test_robustness_presets_shape_the_training_pools():
    from training.prepare import prepare_data

    base = dict(dataset="synthetic", split_seed=0)
    _, plain = prepare_data(TrainConfig(**base))
    _, disj = prepare_data(TrainConfig(disjoint=0.5, **base))
    tr = disj["train"]
    assert tr.correspondence is None  # no pairing survives
    from training.datasets import load_pair

    events_of_students = load_pair("synthetic").correspondence[tr.student.index.numpy()]
    assert len(np.intersect1d(events_of_students, tr.teacher.index.numpy())) == 0  # disjoint pools
    assert len(tr.student) + len(tr.teacher) == len(plain["train"].student)
    _, imb = prepare_data(TrainConfig(imbalance=10, **base))
    counts = imb["train"].student.class_counts()
    assert counts.max() / counts.min() == pytest.approx(10, rel=0.2)
    with pytest.raises(ValueError, match="share no sample"):
        prepare_data(TrainConfig(dataset="avmnist", disjoint=0.5))
    # issue 15 #4: the preset says what it dropped, and a paired protocol is refused naming the dataset at hand
    assert "training pairs" in tr.info["disjoint"]["dropped"] and disj["test"].correspondence is not None
    with pytest.raises(ValueError, match="leaves synthetic no training pair"):
        prepare_data(TrainConfig(disjoint=0.5, protocol="paired", **base))


def free_port() -> int:
    """A port no process listens on now (a fixed one can still be held by a previous run's socket)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _torchrun(tmp_path, name, cfg_kwargs: dict) -> dict:
    """Train with ``cfg_kwargs`` on two ranks under torchrun (a free port); the run's result.json."""
    script = tmp_path / f"{name}.py"
    script.write_text("from training.config import TrainConfig\nfrom training.loop import train\n"
                      f"train(TrainConfig(**{cfg_kwargs!r}))\n")
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "OMP_NUM_THREADS": "1"}
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                        f"--master_port={free_port()}", str(script)], capture_output=True, text=True, env=env,
                       timeout=900)
    assert r.returncode == 0, r.stderr[-8000:]
    return json.loads((tmp_path / name / "result.json").read_text())


@pytest.mark.slow
def test_torchrun_trains_batchnorm_models_with_identical_ranks(tmp_path):
    """The CNN teacher and an image student (both with BatchNorm) train on two ranks and end identical."""
    common = dict(dataset="digits-fsdd", feat_dim=32, batch_size=64, quiet=True)
    teacher = _torchrun(tmp_path, "teacher", dict(role="teacher", epochs=3, out=str(tmp_path / "teacher"), **common))
    assert teacher["world_size"] == 2 and teacher["ranks_identical"] is True
    assert teacher["test_acc"] > 0.6  # 8x8 digits, ten classes
    _, weights = read_checkpoint(tmp_path / "teacher" / "best.safetensors")
    assert any(k.endswith("running_var") for k in weights)
    assert all(not torch.equal(v, torch.ones_like(v)) for k, v in weights.items() if k.endswith("running_var"))
    # the image student: spoken digits (trained here on one process) teach the 8x8 digits CNN
    audio = train(TrainConfig(role="teacher", swap=True, epochs=2, out=str(tmp_path / "audio"), **common)).path
    student = _torchrun(tmp_path, "student", dict(method="ucmkd", swap=True, teacher=str(audio / "best.safetensors"),
                                                  epochs=2, out=str(tmp_path / "student"), **common))
    assert student["world_size"] == 2 and student["ranks_identical"] is True
    assert student["test_acc"] > 0.5
