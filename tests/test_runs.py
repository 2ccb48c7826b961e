"""Run folders and experiments do what a user expects: reuse only the same configuration, resume, never poison
an output folder, select within the label budget (issue 9), and honour the protocol in every regime (issue 15)."""

import json

import numpy as np
import pytest
import torch

from cmkd_bounds.app.cli import main
from training.batches import make_batch, plan_epoch
from training.checkpoint import read_checkpoint
from training.config import TrainConfig
from training.loop import train
from training.prepare import prepare_data

SYN = dict(dataset="synthetic", feat_dim=8, batch_size=32, quiet=True)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher")
    train(TrainConfig(role="teacher", epochs=2, out=str(out), **SYN))
    return out / "best.safetensors"


def test_multiseed_refuses_a_folder_of_another_method_and_overwrite_redoes_it(teacher, tmp_path, capsys):
    """Issue 9 #2: a finished run is reused only for the same configuration."""
    args = ["multiseed", "--dataset", "synthetic", "--feat-dim", "8", "--epochs", "1", "--seeds", "0",
            "--teacher", str(teacher), "--out", str(tmp_path / "ms"), "--quiet"]
    assert main([*args, "--method", "ce"]) == 0
    ce = json.loads((tmp_path / "ms" / "seed0" / "student" / "result.json").read_text())
    assert main([*args, "--method", "ucmkd"]) == 2
    assert "another configuration (method: 'ce' there, 'ucmkd' now)" in capsys.readouterr().err
    assert main([*args, "--method", "ucmkd", "--overwrite"]) == 0
    uc = json.loads((tmp_path / "ms" / "seed0" / "student" / "result.json").read_text())
    assert uc["method"] == "ucmkd" and ce["method"] == "ce"
    assert "ucmkd on synthetic" in capsys.readouterr().out


def test_a_failed_start_does_not_poison_the_folder(teacher, tmp_path, capsys):
    """Issue 9 #6: a typo fails before anything is written; a run that died before its first epoch is redone."""
    out = tmp_path / "run"
    base = ["train", "--teacher", str(teacher), "--dataset", "synthetic", "--feat-dim", "8", "--epochs", "1",
            "--out", str(out), "--quiet"]
    assert main([*base, "--protocol", "class_resampel"]) == 2
    assert "unknown protocol 'class_resampel'" in capsys.readouterr().err and not out.exists()
    out.mkdir()
    (out / "config.json").write_text(json.dumps(TrainConfig(method="joint", **SYN).to_dict()))  # died in epoch 1
    assert main([*base, "--protocol", "class_resample"]) == 0
    assert "never finished an epoch" in capsys.readouterr().err
    assert json.loads((out / "config.json").read_text())["method"] == "ucmkd"


def test_finished_runs_are_reused_and_cut_runs_resume(teacher, tmp_path):
    """Issue 9 #5: the same command continues an interrupted run and returns a finished one as it is."""
    cfg = TrainConfig(method="ce", teacher=str(teacher), epochs=2, out=str(tmp_path / "r"), **SYN)
    train(TrainConfig.from_dict({**cfg.to_dict(), "epochs": 1}))  # interrupted after one epoch of two
    (tmp_path / "r" / "result.json").unlink()
    train(cfg)
    assert len((tmp_path / "r" / "metrics.jsonl").read_text().splitlines()) == 2
    stamp = (tmp_path / "r" / "best.safetensors").stat().st_mtime_ns
    train(cfg)  # finished: nothing is trained again
    assert (tmp_path / "r" / "best.safetensors").stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="holds a run of 2 epochs"):
        train(TrainConfig.from_dict({**cfg.to_dict(), "epochs": 1}))


def test_selection_uses_no_more_labels_than_training(teacher, tmp_path):
    """Issue 9 #12: with k labels per class the validation set used for selection has k per class."""
    train(TrainConfig(method="ce", protocol="permutation", teacher=str(teacher), epochs=1, labels_per_class=3,
                      out=str(tmp_path / "r"), **SYN))
    res = json.loads((tmp_path / "r" / "result.json").read_text())
    assert res["val_items"] == 3 * 4  # synthetic has 4 classes
    meta, _ = read_checkpoint(tmp_path / "r" / "best.safetensors")
    assert meta.num_labelled == 3 * 4


def test_posterior_true_is_refused_on_checkpoints(teacher, tmp_path, capsys):
    """Issue 9 #8."""
    train(TrainConfig(method="ce", teacher=str(teacher), epochs=1, out=str(tmp_path / "s"), **SYN))
    assert main(["evaluate", "--student", str(tmp_path / "s" / "best.safetensors"), "--out", str(tmp_path / "e"),
                 "--posterior", "true"]) == 2
    assert "only in synthetic worlds" in capsys.readouterr().err and not (tmp_path / "e").exists()


def test_single_modalities_are_named_as_such(capsys):
    """Issue 9 #9: `--dataset mnist` says it is a modality and names the pairs to use."""
    assert main(["train", "--role", "teacher", "--dataset", "mnist", "--out", "x"]) == 2
    err = capsys.readouterr().err
    assert "'mnist' is a single modality" in err and "avmnist" in err


# ----------------------------------------------------------------------------- issue 15: protocols in every regime
def _first_batches(cfg):
    _, splits = prepare_data(cfg)
    tr = splits["train"]
    y = tr.student.y.numpy()
    from training.prepare import labelled_subset

    plan = plan_epoch(cfg, y, labelled_subset(y, cfg.labels_per_class, cfg.seed), tr.teacher.y.numpy(),
                      tr.correspondence, 0)
    feats = torch.arange(len(tr.teacher), dtype=torch.float32)[:, None].repeat(1, 8)
    return make_batch(plan, 0, 32, tr.student, feats, feats[:, :4], "cpu"), tr


def test_paired_and_permutation_differ_with_few_labels_and_class_resample_is_refused(teacher, tmp_path):
    """Issue 15 #2: with few labels on paired data the protocol decides the label-free batch's partners."""
    paired, tr = _first_batches(TrainConfig(method="ucmkd", protocol="paired", labels_per_class=2, teacher="t", **SYN))
    perm, _ = _first_batches(TrainConfig(method="ucmkd", protocol="permutation", labels_per_class=2, teacher="t",
                                         **SYN))
    assert torch.equal(paired.fa_x, perm.fa_x) and not torch.equal(paired.fa_zt, perm.fa_zt)
    # under paired, each unlabelled item's partner is its own teacher view
    idx = paired.fa_zt[:, 0].long().numpy()
    assert np.array_equal(tr.teacher.y.numpy()[idx], tr.student.y.numpy()[
        [int(np.flatnonzero((tr.student.x == x).all(1))[0]) for x in paired.fa_x]])
    with pytest.raises(ValueError, match="unlabelled items have no class"):
        TrainConfig(method="ucmkd", protocol="class_resample", labels_per_class=2, teacher="t", **SYN).validate()
    runs = {}
    for p in ("paired", "permutation"):
        train(TrainConfig(method="feature_kd", protocol=p, labels_per_class=2, teacher=str(teacher), epochs=1,
                          out=str(tmp_path / p), **SYN))
        runs[p] = read_checkpoint(tmp_path / p / "last.safetensors")[1]
    assert any(not torch.equal(runs["paired"][k], runs["permutation"][k]) for k in runs["paired"])


def test_vanilla_kd_with_few_labels_distils_every_paired_item(teacher, tmp_path):
    """Issue 15 #1: KD on the label-free batch (every pool item with its partner), CE on the k labelled ones."""
    b, _ = _first_batches(TrainConfig(method="vanilla_kd", protocol="paired", labels_per_class=2, teacher="t", **SYN))
    assert b.fa_x is not None and b.fa_tlogits is not None and len(b.fa_x) == 32 and len(b.x) <= 2 * 4
    train(TrainConfig(method="vanilla_kd", protocol="paired", labels_per_class=2, teacher=str(teacher), epochs=1,
                      out=str(tmp_path / "kd"), **SYN))
    res = json.loads((tmp_path / "kd" / "result.json").read_text())
    assert res["labels_per_class"] == 2 and res["method"] == "vanilla_kd" and res["test_acc"] > 0.25


def test_quickstart_writes_where_git_does_not_look():
    """Issue 9 #1: the main command's default folder is ignored by git, so a fresh clone stays clean."""
    import subprocess
    from pathlib import Path

    from cmkd_bounds.app.cli import build_parser

    root = Path(__file__).resolve().parents[1]
    out = build_parser().parse_args(["quickstart"]).out
    assert not Path(out).parts[0] == "reports"
    if not (root / ".git").exists():
        pytest.skip("not a git checkout")
    r = subprocess.run(["git", "check-ignore", "-q", f"{out}/teacher/best.safetensors"], cwd=root)
    assert r.returncode == 0, f"{out} is not ignored by git"


@pytest.mark.slow
def test_quickstart_resumes_after_an_interruption(tmp_path, capsys):
    """Issue 9 #5: rerunning the quickstart reuses what finished and redoes only what is missing."""
    import shutil

    out = tmp_path / "qs"
    args = ["quickstart", "--out", str(out), "--teacher-epochs", "1", "--student-epochs", "1", "--quiet"]
    assert main(args) == 0
    kept = {p: (out / p).stat().st_mtime_ns for p in ("teacher/best.safetensors", "ce/best.safetensors",
                                                       "eval-ce/bound.json")}
    shutil.rmtree(out / "ucmkd")  # as if Ctrl-C had stopped it before the UCMKD student
    shutil.rmtree(out / "eval-ucmkd")
    assert main(args) == 0
    assert {p: (out / p).stat().st_mtime_ns for p in kept} == kept
    assert (out / "ucmkd" / "result.json").exists() and (out / "eval-ucmkd" / "bound.json").exists()
    assert json.loads((out / "summary.json").read_text())["ucmkd_test_acc"] > 0.1
