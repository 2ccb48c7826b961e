"""Bring your own data (issue 9 #4) and a pairing the tool checks (issue 15 #3), through the command line."""

import json
import warnings

import numpy as np
import pytest

from cmkd_bounds.app.cli import main
from training.arrays import load_arrays
from training.checkpoint import read_checkpoint
from training.data import DatasetError


def two_views(path, n=240, C=4, seed=0, scale=None, **extra):
    """A paired two-view problem: both views are noisy linear images of a class mean."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % C
    mu = rng.normal(size=(C, 3)) * 2
    u = mu[y] + rng.normal(size=(n, 3)) * 0.7
    t = u @ rng.normal(size=(3, 5)) + rng.normal(size=(n, 5)) * 0.1
    s = u @ rng.normal(size=(3, 6)) + rng.normal(size=(n, 6)) * 0.1
    if scale is not None:
        s = s * scale
    arrays = dict(teacher_x=t, teacher_y=y, student_x=s, student_y=y, correspondence=np.arange(n))
    arrays.update(extra)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def train_args(f, out, *more):
    return ["train", "--arrays", str(f), "--feat-dim", "8", "--epochs", "1", "--batch-size", "32", "--quiet",
            "--out", str(out), *more]


def test_arrays_implies_its_dataset_and_checkpoints_record_the_file(tmp_path, capsys):
    f = two_views(tmp_path / "mine.npz")
    assert main([*train_args(f, tmp_path / "t"), "--role", "teacher"]) == 0
    meta, _ = read_checkpoint(tmp_path / "t" / "best.safetensors")
    assert meta.dataset == "arrays" and meta.data["path"] == str(f.resolve()) and len(meta.data["sha256"]) == 64
    assert main([*train_args(f, tmp_path / "x"), "--role", "teacher", "--dataset", "avmnist"]) == 2
    assert "--arrays FILE is read only with --dataset arrays" in capsys.readouterr().err


def test_a_student_on_other_data_than_its_teacher_is_refused(tmp_path, capsys):
    f, g = two_views(tmp_path / "a.npz"), two_views(tmp_path / "b.npz", seed=1)
    assert main([*train_args(f, tmp_path / "t"), "--role", "teacher"]) == 0
    assert main([*train_args(g, tmp_path / "s"), "--teacher", str(tmp_path / "t" / "best.safetensors")]) == 2
    assert "trained on different data" in capsys.readouterr().err
    assert main([*train_args(f, tmp_path / "s"), "--teacher", str(tmp_path / "t" / "best.safetensors"),
                 "--method", "ce"]) == 0
    two_views(f, seed=2)  # the file changes after training: evaluate notices
    assert main(["evaluate", "--student", str(tmp_path / "s" / "best.safetensors"), "--out", str(tmp_path / "e")]) == 2
    assert "is not the one the run was trained on" in capsys.readouterr().err  # issue 23 #2: which file, which digests


def test_labels_must_be_zero_based_and_keys_known(tmp_path):
    f = two_views(tmp_path / "a.npz", teacher_y=np.arange(240) % 4 + 1, student_y=np.arange(240) % 4 + 1)
    with pytest.raises(DatasetError, match=r"class\(es\) \[0\] never occur"):
        load_arrays(f)
    g = two_views(tmp_path / "b.npz", teacher_y=np.arange(240) % 4 + 1, student_y=np.arange(240) % 4 + 1,
                  class_names=np.array(["none", "a", "b", "c", "d"]))
    assert load_arrays(g).teacher.num_classes == 5  # explicit with class_names
    h = two_views(tmp_path / "c.npz", corespondence=np.arange(240))  # misspelt key
    with pytest.raises(DatasetError, match="unknown array\\(s\\) corespondence"):
        load_arrays(h)


def test_user_splits_standardisation_and_scale_warning(tmp_path, capsys):
    idx = np.random.default_rng(0).permutation(240)
    f = two_views(tmp_path / "a.npz", scale=np.r_[1e4, np.ones(5)], teacher_train=idx[:150], teacher_val=idx[150:190],
                  teacher_test=idx[190:])
    with pytest.warns(UserWarning, match="student_x differ in scale by .e\\+04"):
        pair = load_arrays(f)
    parts = pair.split(123)
    assert len(parts["train"].teacher) == 150 and len(parts["test"].student) == 50
    assert main(["datasets", "--arrays", str(f)]) == 0
    out = capsys.readouterr().out
    assert "paired: 240 pairs, label agreement 100.0 %" in out and "splits: given in the file" in out
    from training.config import TrainConfig
    from training.prepare import prepare_data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, std = prepare_data(TrainConfig(dataset="arrays", arrays=str(f), standardize=True))
    x = std["train"].student.x
    assert x.mean(0).abs().max() < 1e-4 and (x.std(0) - 1).abs().max() < 1e-2


def test_a_wrong_correspondence_is_refused_or_recorded(tmp_path, capsys):
    rng = np.random.default_rng(3)
    f = two_views(tmp_path / "shuffled.npz", correspondence=rng.permutation(240))
    assert main([*train_args(f, tmp_path / "t"), "--role", "teacher"]) == 2
    assert "have the same label (a shuffled or wrong correspondence?)" in capsys.readouterr().err
    g = two_views(tmp_path / "dup.npz", correspondence=np.zeros(240, int))
    with pytest.raises(DatasetError, match="more than once"):
        load_arrays(g)
    half = np.arange(240)
    half[:12] = np.r_[half[1:12], half[0]]  # 12 pairs rotated: 95 % still agree
    h = two_views(tmp_path / "mostly.npz", correspondence=half)
    with pytest.warns(UserWarning, match="% of the paired items have the same label"):
        pair = load_arrays(h)
    assert pair.info["label_agreement"] == pytest.approx(1 - 12 / 240)
    assert main([*train_args(h, tmp_path / "t2"), "--role", "teacher"]) == 0
    assert json.loads((tmp_path / "t2" / "result.json").read_text())["pairing"]["label_agreement"] == pytest.approx(
        0.95)
    assert main([*train_args(f, tmp_path / "t3"), "--role", "teacher", "--allow-label-disagreement"]) == 0
