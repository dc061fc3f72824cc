"""AN4 preparation (asr.corpora.an4, recipes/an4/prepare.py) on a tiny fake AN4 tree in CMU's layout, read in
place or served on loopback."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.corpora import PrepareError
from asr.corpora import an4 as prepare
from asr.download import DownloadError
from asr.errors import EXIT_DATA

PREPARE = Path(__file__).parents[1] / "recipes/an4/prepare.py"

# split -> speaker -> [(utterance id, transcription line text, expected manifest text, seconds)]
UTTERANCES = {
    "train": {
        "fash": [
            ("an251-fash-b", "<s> YES </s>", "YES", 0.5),
            ("cen1-fash-b", "<s> A B C </s>", "A B C", 1.25),
        ],
        "mblb": [
            ("an1-mblb-b", "GO", "GO", 0.75),
            ("cen2-mblb-b", "  <s>  TWO   THREE </s>", "TWO THREE", 1.0),
        ],
        "mcel": [("an7-mcel-b", "<s> RUBOUT X </s>", "RUBOUT X", 1.5)],
    },
    "test": {
        "fcaw": [("an406-fcaw-b", "NO", "NO", 0.6), ("an407-fcaw-b", "<s> ENTER SIX </s>", "ENTER SIX", 0.9)]
    },
}
AUDIO_DIRS = {"train": "an4_clstk", "test": "an4test_clstk"}


def make_an4(root: Path) -> Path:
    """Write a fake AN4 tree (16 kHz NIST SPHERE tones, etc/ files in CMU's format) under ``root``."""
    rng = np.random.default_rng(0)
    for split, speakers in UTTERANCES.items():
        transcription, fileids = [], []
        for speaker, utts in speakers.items():
            for utt, line, _, seconds in utts:
                file_id = f"{AUDIO_DIRS[split]}/{speaker}/{utt}"
                path = root / "wav" / f"{file_id}.sph"
                path.parent.mkdir(parents=True, exist_ok=True)
                t = np.arange(int(seconds * 16000)) / 16000
                wave = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(t.size)
                sf.write(path, wave, 16000, format="NIST", subtype="PCM_16")
                transcription.append(f"{line} ({utt})")
                fileids.append(file_id)
        (root / "etc").mkdir(parents=True, exist_ok=True)
        (root / "etc" / f"an4_{split}.transcription").write_text("\n".join(reversed(transcription)) + "\n")
        (root / "etc" / f"an4_{split}.fileids").write_text("\n".join(fileids) + "\n")
    return root


def read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def expected(split: str, skip: tuple[str, ...] = ()) -> dict[str, tuple[str, float]]:
    return {u: (text, s) for spk in UTTERANCES[split].values() for u, _, text, s in spk if u not in skip}


def by_id(entries: list[dict]) -> dict[str, tuple[str, float]]:
    return {Path(e["audio_filepath"]).stem: (e["text"], round(e["duration"], 6)) for e in entries}


def test_manifests_from_data_dir(tmp_path, capsys):
    data = make_an4(tmp_path / "an4")
    out = prepare.prepare_an4(tmp_path / "out", data)
    assert set(out) == {"train", "dev", "test", "train_all"}
    m = {name: read(path) for name, path in out.items()}
    assert by_id(m["train_all"]) == (expected("train"))
    assert by_id(m["test"]) == (expected("test"))
    # three training speakers: the middle one of the sorted list is held out whole
    assert {Path(e["audio_filepath"]).parent.name for e in m["dev"]} == {"mblb"}
    assert "mblb" not in {Path(e["audio_filepath"]).parent.name for e in m["train"]}
    assert len(m["train"]) + len(m["dev"]) == len(m["train_all"]) == 5
    assert all(Path(e["audio_filepath"]).is_file() for e in m["train_all"] + m["test"])
    assert "train_all:     5 utterances" in capsys.readouterr().out


def test_rerun_skips_until_transcription_changes(tmp_path, capsys):
    data = make_an4(tmp_path / "an4")
    out = prepare.prepare_an4(tmp_path / "out", data)
    written = out["train"].stat().st_mtime_ns
    prepare.prepare_an4(tmp_path / "out", data)
    assert out["train"].stat().st_mtime_ns == written
    assert "up to date" in capsys.readouterr().out
    source = data / "etc" / "an4_train.transcription"
    later = written + 10**9
    os.utime(source, ns=(later, later))
    prepare.prepare_an4(tmp_path / "out", data)
    assert out["train"].stat().st_mtime_ns != written


def test_bad_audio_and_lines_are_reported_and_skipped(tmp_path, capsys):
    data = make_an4(tmp_path / "an4")
    (data / "wav/an4_clstk/fash/cen1-fash-b.sph").write_bytes(b"not audio at all" * 100)
    (data / "wav/an4test_clstk/fcaw/an406-fcaw-b.sph").unlink()
    with open(data / "etc/an4_train.transcription", "a") as f:
        f.write("<s> NO ID HERE </s>\n")
    out = prepare.prepare_an4(tmp_path / "out", data)
    assert by_id(read(out["train_all"])) == (expected("train", skip=("cen1-fash-b",)))
    assert by_id(read(out["test"])) == (expected("test", skip=("an406-fcaw-b",)))
    err = capsys.readouterr().err.splitlines()
    assert sum("cen1-fash-b.sph" in line for line in err) == 1
    assert sum("an406-fcaw-b.sph: file not found" in line for line in err) == 1
    assert sum("an4_train.transcription:6: no '(utterance-id)'" in line for line in err) == 1
    assert err[-1].startswith("skipped 3 utterance(s)")


def test_missing_etc_file_is_a_clear_error(tmp_path, capsys):
    data = make_an4(tmp_path / "an4")
    (data / "etc/an4_test.fileids").unlink()
    with pytest.raises(PrepareError, match=r"missing .*an4_test\.fileids.*--data-dir must point"):
        prepare.prepare_an4(tmp_path / "out", data)
    out = subprocess.run(
        [
            sys.executable,
            str(PREPARE),
            "--out-dir",
            str(tmp_path / "out"),
            "--data-dir",
            str(tmp_path / "no"),
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert out.returncode == EXIT_DATA and out.stderr.startswith("error: not an AN4 tree")
    assert len(out.stderr.splitlines()) == 1
    assert not (tmp_path / "out").exists()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def file_server(tmp_path) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server for the files in ``tmp_path/www``; yields (base URL, folder)."""
    www = tmp_path / "www"
    www.mkdir()
    srv = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(www)))
    thread = threading.Thread(target=srv.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", www
    srv.shutdown()
    srv.server_close()
    thread.join()


def test_download_branch(tmp_path, file_server):
    url, www = file_server
    make_an4(tmp_path / "src" / "an4")
    archive = www / prepare.ARCHIVE_NAME
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / "an4", arcname="an4")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    urls = [f"{url}/gone/{prepare.ARCHIVE_NAME}", f"{url}/{prepare.ARCHIVE_NAME}"]
    with pytest.raises(DownloadError, match="sha256 mismatch"):
        prepare.prepare_an4(tmp_path / "out", urls=urls, sha256="f" * 64)
    out = prepare.prepare_an4(tmp_path / "out", urls=urls, sha256=digest)
    entries = read(out["train_all"])
    assert by_id(entries) == (expected("train"))
    assert all(e["audio_filepath"].startswith("an4/wav/an4_clstk/") for e in entries)
    assert (tmp_path / "out" / prepare.ARCHIVE_NAME).is_file()
