"""Safe outputs: an output never replaces an input, and every file is written atomically.

Entry points call :func:`refuse_overwrite` for each output before any work starts, :func:`check_output_dir`
for each output folder, and write through :func:`write_text_atomic` / :func:`write_bytes_atomic`: a
temporary file in the target's folder, fsynced, then renamed over the target, so a crash or a full disk
leaves the previous file whole. Every failure is an :class:`~asr.errors.OutputError` (exit 6) naming the file.
"""

from __future__ import annotations

import glob
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from asr.errors import OutputError, first_line


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: the same resolved path, or the same inode (a hard link)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def refuse_overwrite(output: str | Path, inputs: Iterable[str | Path]) -> None:
    """Raise :class:`OutputError` when ``output`` is one of ``inputs`` (through links and relative paths)."""
    for source in inputs:
        if _same_file(Path(output), Path(source)):
            raise OutputError(f"{output}: refusing to overwrite the input {source}; choose another output")


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file, fsync and rename; the old file survives a failure.

    Missing parent folders are created. A symbolic link is written through (its target is replaced); a
    new file gets the usual permissions (0666 less the umask), an existing one keeps its own. Temporary
    files orphaned by a killed writer of the same path are removed.
    """
    target = Path(os.path.realpath(path))
    tmp: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        for orphan in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
            orphan.unlink(missing_ok=True)
        mode = target.stat().st_mode & 0o7777 if target.is_file() else 0o666 & ~_umask()
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
        tmp = None
        _fsync_dir(target.parent)
    except OSError as e:
        raise OutputError(f"{path}: cannot write ({e.strerror or first_line(e)})", e.errno) from None
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically; see :func:`write_bytes_atomic`."""
    write_bytes_atomic(path, text.encode("utf-8"))


def check_output_dir(path: str | Path) -> Path:
    """Create the folder ``path`` if needed and check that files can be written in it, before any work."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{path}: not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OutputError(
            f"{path}: cannot create the output folder ({e.strerror or first_line(e)})"
        ) from None
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-check.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OutputError(
            f"{path}: output folder not writable ({e.strerror or first_line(e)})", e.errno
        ) from None
    return folder
