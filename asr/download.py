"""Downloads from a list of mirrors with resume and checksums, and tar extraction that stays in its folder.

Standard library only (plus tqdm for progress bars). ``dest`` only ever holds a verified file: data arrives in
``dest.part`` and is renamed into place after its digest matches.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tarfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from tqdm import tqdm

from asr.errors import DataError

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60.0  # a mirror that sends nothing for this long is given up
USER_AGENT = "asr-toolkit/1 (python urllib)"  # some servers refuse urllib's default agent


class DownloadError(DataError):
    """A file that no mirror delivered intact; the message names the file, each URL and what went wrong."""


class ExtractError(DataError):
    """An archive that is unreadable or holds an unsafe member; the message names the archive and member."""


def download(urls: list[str] | str, dest: Path, sha256: str | None = None, md5: str | None = None) -> Path:
    """Fetch ``dest`` from the first of ``urls`` that delivers a file matching the given digests.

    A partial ``dest.part`` left by an earlier attempt is resumed with an HTTP Range request (and restarted
    when the server answers with the whole file). A file that fails its checksum is deleted and the next
    mirror is tried. An existing ``dest`` that verifies is returned without touching the network. Raises
    :class:`DownloadError` naming every URL tried when none succeeds.
    """
    urls = [urls] if isinstance(urls, str) else list(urls)
    dest = Path(dest)
    expected = {name: digest.lower() for name, digest in (("sha256", sha256), ("md5", md5)) if digest}
    if dest.is_file() and _mismatch(dest, expected) is None:
        return dest
    if not urls:
        raise DownloadError(f"could not download {dest.name}: no URL given")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_suffix(dest.suffix + ".part")
    failures = []
    for url in urls:
        try:
            _fetch(url, part, dest.name)
        except (OSError, http.client.HTTPException, ValueError) as e:
            failures.append(f"{url}: {_reason(e)}")
            continue
        problem = _mismatch(part, expected)
        if problem is None:
            os.replace(part, dest)
            return dest
        part.unlink()
        failures.append(f"{url}: {problem}")
    raise DownloadError(f"could not download {dest.name}: " + "; ".join(failures))


def _fetch(url: str, part: Path, label: str) -> None:
    """Append ``url``'s bytes to ``part`` from its current size, or rewrite it when Range is not honoured."""
    offset = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        if e.code != 416 or not offset:
            raise
        part.unlink()  # 416: the partial file is no prefix of this one (e.g. longer); start again
        _fetch(url, part, label)
        return
    with response:
        if response.status != 206:
            offset = 0  # the server sends the whole file
        length = response.headers.get("Content-Length", "")
        total = offset + int(length) if length.isdigit() else None
        with (
            open(part, "ab" if offset else "wb") as f,
            tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024, desc=label
            ) as bar,
        ):
            while chunk := response.read(CHUNK_BYTES):
                f.write(chunk)
                bar.update(len(chunk))
    received = part.stat().st_size
    if total is not None and received < total:
        raise ConnectionError(f"connection closed after {received} of {total} bytes (run again to resume)")


def _mismatch(path: Path, expected: dict[str, str]) -> str | None:
    """None when ``path`` has every expected digest, else a description of the first that differs."""
    if not expected:
        return None
    hashes = {name: hashlib.new(name, usedforsecurity=False) for name in expected}
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK_BYTES):
            for h in hashes.values():
                h.update(chunk)
    for name, h in hashes.items():
        if h.hexdigest() != expected[name]:
            return f"{name} mismatch (expected {expected[name]}, got {h.hexdigest()})"
    return None


def _reason(e: Exception) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        return str(e.reason)
    return str(e) or type(e).__name__


def extract_tar(archive: Path, target: Path) -> None:
    """Extract ``archive`` (any compression ``tarfile`` reads) into ``target``, refusing unsafe members.

    Absolute paths, ``..`` escapes, links that point outside ``target`` and device or FIFO files raise
    :class:`ExtractError` before anything is written; tarfile's ``"data"`` filter guards the extraction
    itself. Success writes ``target/.extracted-<archive name>``, which makes a repeated call a no-op.
    """
    archive, target = Path(archive), Path(target)
    marker = target / f".extracted-{archive.name}"
    if marker.exists():
        return
    if not archive.is_file():
        raise ExtractError(f"{archive}: archive not found")
    if not hasattr(tarfile, "data_filter"):
        raise ExtractError(f"{archive}: needs tarfile's data filter (Python 3.10.12+, 3.11.4+)")
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    try:
        with tarfile.open(archive) as tar:
            members = tar.getmembers()
            for member in members:
                problem = _unsafe(member, root)
                if problem:
                    raise ExtractError(f"{archive}: refusing member {member.name!r}: {problem}")
            tar.extractall(root, members=members, filter="data")
    except tarfile.FilterError as e:
        raise ExtractError(f"{archive}: refusing member {e.tarinfo.name!r}: {e}") from None
    except (tarfile.TarError, EOFError, zlib.error) as e:
        raise ExtractError(f"{archive}: not a readable tar archive ({e})") from None
    marker.touch()


def _unsafe(member: tarfile.TarInfo, root: Path) -> str | None:
    """Why ``member`` must not be extracted into the resolved folder ``root``, or None when it is safe."""
    if member.name.startswith(("/", os.sep)) or os.path.isabs(member.name):
        return "absolute path"
    dest = Path(os.path.normpath(root / member.name))
    if not dest.is_relative_to(root):
        return "path escapes the target folder"
    if member.isdev():
        return "device or FIFO file"
    if member.issym() or member.islnk():
        kind = "symlink" if member.issym() else "hardlink"
        if os.path.isabs(member.linkname):
            return f"{kind} to absolute path {member.linkname!r}"
        base = dest.parent if member.issym() else root
        if not Path(os.path.normpath(base / member.linkname)).is_relative_to(root):
            return f"{kind} to {member.linkname!r} points outside the target folder"
    return None
