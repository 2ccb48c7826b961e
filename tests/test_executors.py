"""Issue 22: a study through submitit (its local executor) and Dask (a LocalCluster) gives the local executor's runs
bit for bit, and a job killed mid-run is finished by rerunning the study, without redoing the finished runs."""

import json
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from cmkd_bounds.app.executors import ExecutorSpec, parse_options, run_tasks
from cmkd_bounds.app.experiments import run_all
from training.config import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
SYN = dict(dataset="synthetic", feat_dim=8, quiet=True, epochs=2)


def _square(x):
    return x * x


def test_options_and_the_local_executor():
    assert parse_options(["partition=gpu", "timeout_min=90", "gpus_per_node=1"]) == {
        "partition": "gpu", "timeout_min": 90, "gpus_per_node": 1}
    assert run_tasks(ExecutorSpec("local", 1), _square, [(2,), (3,)]) == [4, 9]
    with pytest.raises(ValueError, match="unknown executor"):
        ExecutorSpec("slurm")
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_options(["partition"])


def test_a_missing_cluster_extra_is_said_before_anything_runs(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "submitit" else real(name, *a))
    with pytest.raises(ValueError, match=r"--executor submitit needs submitit.*\[cluster\]"):
        ExecutorSpec("submitit", 2)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("ex") / "teacher"
    run_all([TrainConfig(role="teacher", out=str(out), **SYN)], threads=1)
    return out / "best.safetensors"


def _students(root: Path, teacher: Path) -> list[TrainConfig]:
    return [TrainConfig(method=m, protocol="permutation", seed=s, teacher=str(teacher), out=str(root / f"{m}-{s}"),
                        **SYN) for m in ("ce", "feature_kd") for s in (0, 1)]


def _weights(run: str) -> dict:
    from safetensors.torch import load_file

    return load_file(Path(run) / "best.safetensors")


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["submitit", "dask"])
def test_cluster_executors_give_the_local_runs_bit_for_bit(teacher, tmp_path, kind):
    pytest.importorskip("submitit" if kind == "submitit" else "distributed")
    local = _students(tmp_path / "local", teacher)
    run_all(local, threads=1)
    remote = _students(tmp_path / kind, teacher)
    opts = {"cluster": "local", "folder": str(tmp_path / "logs" / "%j"), "timeout_min": 10} if kind == "submitit" \
        else {}
    run_all(remote, threads=1, executor=ExecutorSpec(kind, 2, opts))
    for a, b in zip(local, remote):
        wa, wb = _weights(a.out), _weights(b.out)
        assert all(torch.equal(wa[k], wb[k]) for k in wa), a.out
        ra, rb = (json.loads((Path(c.out) / "result.json").read_text()) for c in (a, b))
        assert ra["test_acc"] == rb["test_acc"] and ra["best_val_acc"] == rb["best_val_acc"]


@pytest.mark.slow
def test_a_killed_job_is_finished_by_rerunning_without_redoing_the_others(teacher, tmp_path):
    pytest.importorskip("distributed")
    cfgs = [replace(c, epochs=4) for c in _students(tmp_path / "study", teacher)]
    victim = cfgs[-1]
    run_all(cfgs[:-1], threads=1)  # the finished runs
    finished = {c.out: (Path(c.out) / "result.json").stat().st_mtime_ns for c in cfgs[:-1]}
    # the victim's job dies (SIGKILL) after its first epoch
    code = ("import torch; torch.set_num_threads(1)\nfrom training.config import TrainConfig\n"
            f"from training.loop import train\ntrain(TrainConfig(**{victim.to_dict()!r}))\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT)
    metrics = Path(victim.out) / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= 1):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (Path(victim.out) / "result.json").exists() and metrics.read_text().count("\n") < 4
    run_all(cfgs, threads=1, executor=ExecutorSpec("dask", 2))  # the same command again
    assert {c.out: (Path(c.out) / "result.json").stat().st_mtime_ns for c in cfgs[:-1]} == finished
    assert json.loads((Path(victim.out) / "result.json").read_text())["test_acc"] > 0
    assert len(metrics.read_text().splitlines()) == 4
