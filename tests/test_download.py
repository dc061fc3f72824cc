"""asr.download against a loopback HTTP server (Range, dropped connections) and hand-built archives."""

from __future__ import annotations

import hashlib
import io
import re
import socket
import stat
import tarfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from loopback import serve
from reliability import record

from asr.download import DownloadError, ExtractError, download, extract_tar

PAYLOAD = bytes(range(256)) * 400  # 100 KiB


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.files``, honouring ``Range: bytes=N-`` when ``server.ranges``.

    With ``server.cut_after`` set, the connection closes after that many body bytes.
    """

    def do_GET(self) -> None:
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        data = server.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        start = int(match[1]) if match and server.ranges else 0
        if start >= len(data) > 0:
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        body = data[start:]
        if server.cut_after is not None:
            body = body[: server.cut_after]
            self.close_connection = True
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[ThreadingHTTPServer]:
    with serve(_Handler, files={"/data.bin": PAYLOAD}, requests=[], ranges=True, cut_after=None) as srv:
        yield srv


@pytest.fixture
def dead_url() -> str:
    """A loopback URL on which nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/data.bin"


SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
MD5 = hashlib.md5(PAYLOAD).hexdigest()


def test_download_verifies_and_skips_when_present(server, tmp_path):
    dest = tmp_path / "sub" / "data.bin"
    assert download(server.url + "/data.bin", dest, sha256=SHA256, md5=MD5) == dest
    assert dest.read_bytes() == PAYLOAD
    assert not dest.with_suffix(".bin.part").exists()
    download([server.url + "/data.bin"], dest, sha256=SHA256.upper())
    assert len(server.requests) == 1


def test_checksum_mismatch_removes_file_and_names_digests(server, tmp_path):
    dest = tmp_path / "data.bin"
    wrong = "0" * 64
    with pytest.raises(DownloadError) as err:
        download(server.url + "/data.bin", dest, sha256=wrong)
    message = str(err.value)
    assert "\n" not in message
    assert all(s in message for s in ("data.bin", wrong, SHA256))
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []


def test_resumes_partial_file_with_range(server, tmp_path):
    dest = tmp_path / "data.bin"
    dest.with_suffix(".bin.part").write_bytes(PAYLOAD[:1000])
    download(server.url + "/data.bin", dest, sha256=SHA256)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests == [("/data.bin", "bytes=1000-")]


def test_dropped_connection_then_resume(server, tmp_path):
    dest = tmp_path / "data.bin"
    server.cut_after = 30000
    with pytest.raises(DownloadError, match="connection closed after 30000 of 102400 bytes"):
        download(server.url + "/data.bin", dest, sha256=SHA256)
    assert dest.with_suffix(".bin.part").stat().st_size == 30000
    server.cut_after = None
    download(server.url + "/data.bin", dest, sha256=SHA256)
    assert dest.read_bytes() == PAYLOAD
    assert server.requests[-1] == ("/data.bin", "bytes=30000-")


def test_server_ignoring_range_restarts(server, tmp_path):
    dest = tmp_path / "data.bin"
    dest.with_suffix(".bin.part").write_bytes(b"stale bytes from another file")
    server.ranges = False
    download(server.url + "/data.bin", dest, sha256=SHA256)
    assert dest.read_bytes() == PAYLOAD


def test_partial_file_longer_than_remote_restarts(server, tmp_path):
    dest = tmp_path / "data.bin"
    dest.with_suffix(".bin.part").write_bytes(PAYLOAD + b"extra")
    download(server.url + "/data.bin", dest, sha256=SHA256)
    assert dest.read_bytes() == PAYLOAD


def test_first_mirror_dead_second_alive(server, tmp_path, dead_url):
    dest = download([dead_url, server.url + "/data.bin"], tmp_path / "data.bin", sha256=SHA256)
    assert dest.read_bytes() == PAYLOAD


def test_all_mirrors_dead(server, tmp_path, dead_url):
    missing = server.url + "/missing.bin"
    with pytest.raises(DownloadError) as err:
        download([dead_url, missing], tmp_path / "data.bin")
    message = str(err.value)
    assert dead_url in message and missing in message and "HTTP 404" in message
    assert not (tmp_path / "data.bin").exists()


def _archive(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"hello") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _link(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def _device(name: str, kind: bytes = tarfile.CHRTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.devmajor, info.devminor = kind, 1, 3
    return info, None


@pytest.mark.parametrize(
    "bad, reason",
    [
        (_file("../evil"), "escapes"),
        (_file("ok/../../evil"), "escapes"),
        (_file("/abs"), "absolute path"),
        (_link("passwd", "/etc/passwd", tarfile.SYMTYPE), "symlink to absolute path"),
        (_link("up", "../outside", tarfile.SYMTYPE), "outside the target"),
        (_link("hard", "../outside", tarfile.LNKTYPE), "hardlink to '../outside' points outside"),
        (_link("hard", "/etc/passwd", tarfile.LNKTYPE), "hardlink to absolute path"),
        (_device("null"), "device"),
        (_device("fifo", tarfile.FIFOTYPE), "device or FIFO"),
        (_file("./../evil"), "escapes"),
        (_file("a/" * 60 + "../" * 61 + "evil"), "escapes"),  # a GNU long name, past the 100-byte field
        (_file("//evil"), "absolute path"),
        (_link("ok/../../up", "x", tarfile.SYMTYPE), "escapes"),
        (_link("deep/link", "../../outside", tarfile.SYMTYPE), "outside the target"),
        (_link("dot", "/", tarfile.SYMTYPE), "symlink to absolute path"),
    ],
)
def test_extract_refuses_unsafe_member(tmp_path, bad, reason):
    archive = _archive(tmp_path / "bad.tar.gz", [_file("good.txt"), bad])
    target = tmp_path / "out"
    with pytest.raises(ExtractError, match=reason) as err:
        extract_tar(archive, target)
    assert str(archive) in str(err.value) and repr(bad[0].name) in str(err.value)
    assert list(target.iterdir()) == []
    assert not (tmp_path / "evil").exists()
    record("archives: unsafe member", "ExtractError, nothing written")


def test_extract_link_chain_caught_by_data_filter(tmp_path):
    """Each link looks safe on its own; together they escape, which only resolving on disk reveals."""
    directory = tarfile.TarInfo("x")
    directory.type = tarfile.DIRTYPE
    members = [
        (directory, None),
        _link("x/sub", "..", tarfile.SYMTYPE),
        _link("b", "x/sub/..", tarfile.SYMTYPE),
    ]
    archive = _archive(tmp_path / "chain.tar", members)
    with pytest.raises(ExtractError, match=r"chain\.tar: refusing member 'b'"):
        extract_tar(archive, tmp_path / "out")
    record("archives: unsafe member", "ExtractError (link chain, data filter)")


def test_extract_drops_setuid_and_write_for_others(tmp_path):
    info, data = _file("tool", b"#!/bin/sh\n")
    info.mode = 0o6777
    extract_tar(_archive(tmp_path / "modes.tar", [(info, data)]), tmp_path / "out")
    mode = (tmp_path / "out" / "tool").stat().st_mode
    assert not mode & (stat.S_ISUID | stat.S_ISGID | stat.S_IWGRP | stat.S_IWOTH)
    record("archives: unsafe member", "extracted, setuid and group/other write dropped")


def test_extract_good_archive_once(tmp_path):
    archive = _archive(
        tmp_path / "good.tar.gz", [_file("a/b.txt", b"payload"), _link("a/c", "b.txt", tarfile.SYMTYPE)]
    )
    target = tmp_path / "out"
    extract_tar(archive, target)
    assert (target / "a" / "b.txt").read_bytes() == b"payload"
    assert (target / "a" / "c").read_bytes() == b"payload"
    assert (target / ".extracted-good.tar.gz").exists()
    (target / "a" / "b.txt").unlink()
    extract_tar(archive, target)
    assert not (target / "a" / "b.txt").exists()


def test_extract_corrupt_archive(tmp_path):
    archive = tmp_path / "broken.tar.gz"
    archive.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(ExtractError, match="broken.tar.gz: not a readable tar archive"):
        extract_tar(archive, tmp_path / "out")
    assert not (tmp_path / "out" / ".extracted-broken.tar.gz").exists()
