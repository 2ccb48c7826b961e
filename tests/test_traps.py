"""Issue 23: nothing silent, again. Each test reproduces what a new user met on data this project had never seen,
through the command line where it was seen there."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cmkd_bounds.app.cli import main

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--feat-dim", "8", "--epochs", "1", "--quiet"]


def _arrays(path: Path, seed: int = 0, scale: float = 1.0):
    """A small two-view dataset: the student's view is a noisy nonlinear map of the teacher's."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(3), 40)
    x_t = rng.normal(size=(120, 6)) + y[:, None] * 1.5
    x_s = np.tanh(x_t @ rng.normal(size=(6, 5))) * scale + rng.normal(size=(120, 5)) * 0.1
    np.savez(path, teacher_x=x_t.astype(np.float32), teacher_y=y, student_x=x_s.astype(np.float32), student_y=y,
             correspondence=np.arange(120))
    return path


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _train(*args) -> int:
    return main(["train", *args, *FAST])


# ----------------------------------------------------------------------------- 1. --standardize must agree
def test_a_teacher_and_a_student_that_disagree_on_standardize_are_refused(in_tmp, capsys):
    _arrays(in_tmp / "views.npz", scale=300.0)
    assert _train("--role", "teacher", "--arrays", "views.npz", "--standardize", "--out", "t_std") == 0
    assert _train("--role", "teacher", "--arrays", "views.npz", "--out", "t_raw") == 0
    capsys.readouterr()
    for teacher, flag in (("t_std", []), ("t_raw", ["--standardize"])):
        assert _train("--arrays", "views.npz", "--method", "ce", "--protocol", "paired", "--teacher",
                      f"{teacher}/best.safetensors", "--out", f"s_{teacher}", *flag) == 2
        err = capsys.readouterr().err
        assert "disagree on --standardize" in err and not (in_tmp / f"s_{teacher}" / "result.json").exists()
    assert _train("--arrays", "views.npz", "--method", "ce", "--protocol", "paired", "--teacher",
                  "t_std/best.safetensors", "--standardize", "--out", "s_ok") == 0


# ----------------------------------------------------------------------------- 2. data found by content
def test_relative_arrays_and_byte_identical_copies(in_tmp, capsys):
    (in_tmp / "a").mkdir()
    _arrays(in_tmp / "a" / "views.npz")
    os.chdir(in_tmp / "a")
    assert _train("--role", "teacher", "--arrays", "views.npz", "--out", "t") == 0
    assert _train("--arrays", "views.npz", "--method", "ce", "--protocol", "paired", "--teacher", "t/best.safetensors",
                  "--out", "s") == 0
    (in_tmp / "b").mkdir()
    os.chdir(in_tmp / "b")  # evaluate from another working directory: the relative path is found by content
    assert main(["evaluate", "--student", "../a/s/best.safetensors", "--out", "e", "--quiet"]) == 0
    title = (in_tmp / "b" / "e" / "report.md").read_text().splitlines()[0]
    assert "views.npz#" in title  # issue 23 #4: the report names the data
    # a byte-identical copy elsewhere is the same data
    shutil.copy(in_tmp / "a" / "views.npz", in_tmp / "b" / "copy.npz")
    assert _train("--arrays", "copy.npz", "--method", "ce", "--protocol", "paired", "--teacher",
                  "../a/t/best.safetensors", "--out", "s2") == 0
    # a different file at the same paths is refused, and the message says which file and which digests
    _arrays(in_tmp / "a" / "views.npz", seed=1)
    capsys.readouterr()
    assert main(["evaluate", "--student", "../a/s/best.safetensors", "--out", "e2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "is not the one the run was trained on" in err and "views.npz" in err


# ----------------------------------------------------------------------------- 3, 5, 11, 12: options
def test_more_labels_per_class_than_a_class_has_is_refused(in_tmp, capsys):
    _arrays(in_tmp / "views.npz")
    assert _train("--role", "teacher", "--arrays", "views.npz", "--out", "t") == 0
    capsys.readouterr()
    assert _train("--arrays", "views.npz", "--method", "ce", "--protocol", "paired", "--labels-per-class", "500",
                  "--teacher", "t/best.safetensors", "--out", "s") == 2
    assert "--labels-per-class 500: class 0 has 28 training items" in capsys.readouterr().err


def test_train_help_describes_every_option_once(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "(default: 8) (default" not in text and "default: 8 (default: 8)" not in text
    for flag, words in (("--arrays ARRAYS", "your own data"), ("--standardize", "standardise each feature"),
                        ("--allow-label-disagreement", "accept a correspondence")):
        options = text.split("options:", 1)[1]  # the descriptions, past the usage line
        assert words in options.split(flag, 1)[1][:200]


def test_odd_inputs_get_clear_errors_before_anything_heavy(tmp_path, capsys):
    np.savez(tmp_path / "bad.npz", teacher_z=np.zeros((3, 2)))
    (tmp_path / "text.npz").write_text("not numbers\n")
    for args, msg in ((["evaluate", "--features", str(tmp_path / "text.npz")], "a text file"),
                      (["evaluate", "--student", str(tmp_path / "bad.npz")], "a zip archive (an .npz?), not a "
                                                                             "checkpoint"),
                      (["evaluate", "--features", str(tmp_path / "bad.npz"), "--loss-clip", "inf"], "finite"),
                      (["quickstart", "--student-epochs", "0", "--out", str(tmp_path / "q")], "at least one epoch")):
        assert main([*args, "--out", str(tmp_path / "o")] if args[0] == "evaluate" else args) == 2
        assert msg in capsys.readouterr().err
    assert not (tmp_path / "q").exists()  # the teacher never trained
    # a bundle's contents are checked before torch is imported
    code = (f"import sys\nfrom cmkd_bounds.app.cli import main\n"
            f"assert main(['evaluate', '--features', {str(tmp_path / 'bad.npz')!r}, '--out', 'x']) == 2\n"
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path, capture_output=True)


def test_threads_option_and_results_on_stdout(in_tmp, capsys):
    import torch

    _arrays(in_tmp / "views.npz")
    before = torch.get_num_threads()
    try:
        assert main(["train", "--role", "teacher", "--arrays", "views.npz", "--out", "t", "--threads", "1",
                     "--feat-dim", "8", "--epochs", "2"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    out, err = capsys.readouterr()
    assert json.loads(out)["kind"] == "teacher"  # stdout is the result alone (train | jq works)
    assert "teacher epoch 2: val acc" in err  # progress on stderr
    # a larger --epochs extends a finished run, and says so
    assert main(["train", "--role", "teacher", "--arrays", "views.npz", "--out", "t", "--feat-dim", "8",
                 "--epochs", "3", "--quiet"]) == 0
    assert "holds a finished run of 2 epochs; extending it to 3" in capsys.readouterr().err


def test_the_readme_says_how_the_best_epoch_is_chosen_and_how_many_threads():
    text = " ".join((ROOT / "README.md").read_text().split())
    assert "ties go to the later epoch" in text and "--threads 1" in text


# ----------------------------------------------------------------------------- found by a fresh-clone trial
def test_a_split_given_with_a_bundle_and_a_teacher_given_as_student_are_refused_clearly(in_tmp, capsys):
    """``--split`` means nothing for a bundle (it was silently ignored); a teacher checkpoint passed as the student
    was sent looking for its teacher ("give it with --teacher") instead of being named for what it is."""
    from training.synthetic import SyntheticWorld

    fs = SyntheticWorld(num_classes=3, seed=1).feature_set(60, 40, np.random.default_rng(0), with_calibration=False)
    np.savez(in_tmp / "b.npz", **{k: v for k, v in fs.__dict__.items() if v is not None})
    assert main(["evaluate", "--features", "b.npz", "--split", "val", "--out", "e"]) == 2
    assert "--split chooses a split of the checkpoints' data" in capsys.readouterr().err
    _arrays(in_tmp / "views.npz")
    assert _train("--role", "teacher", "--arrays", "views.npz", "--out", "t") == 0
    capsys.readouterr()
    assert main(["evaluate", "--student", "t/best.safetensors", "--out", "e2"]) == 2
    err = capsys.readouterr().err
    assert "a teacher checkpoint where a student is expected" in err and "--teacher" not in err
    assert main(["evaluate", "--student", "t", "--out", "e3"]) == 2  # a run folder, not its checkpoint
    assert "a run folder, not a checkpoint; give t/best.safetensors" in capsys.readouterr().err


def test_multiseed_takes_threads(in_tmp, capsys):
    import torch

    _arrays(in_tmp / "views.npz")
    before = torch.get_num_threads()
    try:
        assert main(["multiseed", "--arrays", "views.npz", "--method", "ce", "--protocol", "paired", "--seeds", "0",
                     "--epochs", "1", "--teacher-epochs", "1", "--feat-dim", "8", "--out", "ms", "--threads", "1",
                     "--quiet"]) == 0
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    assert "ce on arrays" in (in_tmp / "ms" / "table.md").read_text()
