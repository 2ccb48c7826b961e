"""Files: atomic writes, claims on output folders, and digests (standard library only).

A file is written to a temporary name in the same folder, flushed to disk and renamed over the
target (``os.replace`` is atomic on POSIX). An output folder is filled under a temporary sibling
name and swapped in only when complete; an existing non-empty folder is replaced only with
``overwrite=True``, so two runs' files are never mixed.

A *claim* (:func:`claim`) reserves a path for the whole of a run: a lock file ``.NAME.lock`` beside
it is created with ``O_CREAT | O_EXCL`` (atomic), holding the owner's host and process id. A second
writer gets a clear error instead of silently replacing the first one's output; a lock left by a
process that no longer exists on this host is taken over (and said so).

This module is a utility below every layer: the training loop (checkpoints, run folders) and the
application (reports) both use it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path

_UMASK = os.umask(0)
os.umask(_UMASK)


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def write_text(path: str | os.PathLike, text: str) -> Path:
    return write_bytes(path, text.encode("utf-8"))


def file_sha256(path: str | os.PathLike, quick_above: int = 256 * 2**20) -> str:
    """SHA-256 of a file; files above ``quick_above`` bytes hash their size, first and last MiB ("quick:")."""
    path = Path(path)
    h = hashlib.sha256()
    size = path.stat().st_size
    with open(path, "rb") as fh:
        if size <= quick_above:
            for block in iter(lambda: fh.read(2**20), b""):
                h.update(block)
            return h.hexdigest()
        h.update(str(size).encode())
        h.update(fh.read(2**20))
        fh.seek(size - 2**20)
        h.update(fh.read(2**20))
    return "quick:" + h.hexdigest()


def read_npz(path: str | os.PathLike, what: str, error: type[Exception] = ValueError) -> dict:
    """Every array of an ``.npz`` archive, loaded without pickles; ``error`` names the file and the problem
    (missing, empty, a single ``.npy`` array, pickled members, truncated or corrupted)."""
    import zipfile

    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise error(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise error(f"{path}: the file is empty")
    head = path.open("rb").read(8)
    if not head.startswith((b"PK\x03\x04", b"\x93NUMPY")):  # neither an archive nor an array: say what it is
        if head[:1] == b"\x80":
            kind = "a pickle (refused: unpickling can run code)"
        elif all(32 <= c < 127 or c in (9, 10, 13) for c in head):
            kind = "a text file"
        else:
            kind = "not a NumPy file"
        raise error(f"{path}: {kind}; {what} must be an .npz archive of named arrays (np.savez)")
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise error(f"{path}: a single array ({'.npy' if path.suffix == '.npy' else 'not an archive'}); {what} "
                        "must be an .npz archive of named arrays (np.savez)")
        with z:
            return {k: z[k] for k in z.files}
    except error:
        raise
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise error(f"{path}: holds pickled objects, which are refused (they can run code)") from e
        raise error(f"{path}: unreadable ({e}); {what} must be an .npz archive") from e
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as e:
        raise error(f"{path}: truncated or corrupted .npz ({type(e).__name__}: {e})") from e


class ClaimError(FileExistsError):
    """Another live process holds the claim on this path."""


def _lock_path(path: Path) -> Path:
    return path.parent / f".{path.name}.lock"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextlib.contextmanager
def claim(path: str | os.PathLike):
    """Hold an exclusive claim on ``path`` (a file or folder) for the duration of the block."""
    path = Path(path).absolute()
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = _lock_path(path)
    me = {"host": socket.gethostname(), "pid": os.getpid()}
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666 & ~_UMASK)
            break
        except FileExistsError:
            try:
                owner = json.loads(lock.read_text() or "{}")
            except (OSError, ValueError):
                owner = {}
            if owner.get("host") == me["host"] and isinstance(owner.get("pid"), int) and not _alive(owner["pid"]):
                print(f"cmkd-bounds: taking over {path}: its previous writer (pid {owner['pid']}) is gone",
                      file=sys.stderr)
                with contextlib.suppress(FileNotFoundError):
                    lock.unlink()
                continue
            raise ClaimError(f"{path} is being written by another run (host {owner.get('host', '?')}, pid "
                             f"{owner.get('pid', '?')}); wait for it, or choose another output") from None
    else:  # pragma: no cover - two takeovers in a row
        raise ClaimError(f"could not claim {path}")
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(me, fh)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()


@contextlib.contextmanager
def output_folder(path: str | os.PathLike, overwrite: bool = False):
    """Claim ``path`` and yield a fresh temporary folder; on success it becomes ``path``.

    Raises ``FileExistsError`` before any work when ``path`` is a non-empty folder and
    ``overwrite`` is false, and :class:`ClaimError` while another process writes the same folder.
    On failure the temporary folder is removed and ``path`` is untouched.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise FileExistsError(f"{path} exists and is not a folder")
    with claim(path):
        if path.is_dir() and any(path.iterdir()) and not overwrite:
            raise FileExistsError(f"output folder {path} is not empty: pass --overwrite to replace it, or choose "
                                  "another --out")
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent))
        os.chmod(tmp, 0o777 & ~_UMASK)
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        old = None
        if path.exists():
            old = path.parent / f".{path.name}.{os.getpid()}.old"
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
