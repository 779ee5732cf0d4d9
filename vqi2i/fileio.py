"""Atomic writes: build a temporary file (or folder) beside the target, then rename it into place.

Temporary files and folders are created private (0600, 0700), and so are the files safetensors writes; what
is renamed into place gets the mode a plain write or mkdir would give it under the umask (`usual_mode`), so a
run or data set shared with a group stays readable.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from vqi2i.errors import UserError


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (setting it is not thread-safe)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def usual_mode(path: str | os.PathLike) -> None:
    """Give a file or folder the mode that open() or mkdir give it under the umask (0666 or 0777 less the
    umask): for what was made private (mkstemp, mkdtemp, safetensors)."""
    os.chmod(path, (0o777 if os.path.isdir(path) else 0o666) & ~_umask())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it is renamed onto `path`.

    With overwrite=False an existing `path` is a UserError, checked before any work is done.
    On failure the temporary file is removed and the target is left untouched.
    """
    path = Path(path)
    if not overwrite and path.exists():
        raise UserError(f"{path} already exists (pass --overwrite to replace it)")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        usual_mode(tmp_path)  # mkstemp makes files private (0600)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def temp_dir(parent: str | os.PathLike, prefix: str, suffix: str = "") -> Path:
    """A fresh folder in `parent` to fill and then rename into place, with the mode that mkdir gives a
    folder under the umask (mkdtemp makes it private, 0700, which the renamed folder would keep)."""
    tmp = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=parent))
    usual_mode(tmp)
    return tmp


def atomic_write_text(path: str | os.PathLike, text: str, *, overwrite: bool = True) -> None:
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_text(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes, *, overwrite: bool = True) -> None:
    with atomic_path(path, overwrite=overwrite) as tmp:
        tmp.write_bytes(data)
