"""The LibriSpeech recipe on a fake corpus in the real layout, served over loopback HTTP: download, resume,
checksums, extraction, manifests, the LM files, and training plus decoding through recipes/librispeech."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest
import soundfile as sf
from fake_librispeech import LAYOUT, SENTENCES, RangeHandler, make_librispeech
from loopback import serve

from asr.corpora import PrepareError
from asr.corpora import librispeech as prepare
from asr.download import DownloadError
from asr.lm import build_arpa

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, str], Path]:
    """(folder of archives named like OpenSLR's, id -> text, folder with the fake LM files)."""
    tmp = tmp_path_factory.mktemp("librispeech")
    texts = make_librispeech(tmp / "src")
    www = tmp / "www"
    (www / "12").mkdir(parents=True)
    for subset in LAYOUT:
        with tarfile.open(www / "12" / f"{subset}.tar.gz", "w:gz") as tar:
            tar.add(tmp / "src" / "LibriSpeech" / subset, arcname=f"LibriSpeech/{subset}")
            tar.add(tmp / "src" / "LibriSpeech" / "README.TXT", arcname="LibriSpeech/README.TXT")
    lm = www / "11"
    lm.mkdir()
    with gzip.open(lm / "4-gram.arpa.gz", "wt") as f:
        f.write(build_arpa([t.lower() for t in SENTENCES], 2).upper().replace("\\DATA\\", "\\data\\"))
    words = sorted({w for t in SENTENCES for w in t.split()})
    (lm / "librispeech-lexicon.txt").write_text("".join(f"{w}\tW ER D\n" for w in words))
    return www, texts, tmp / "src"


@pytest.fixture
def server(corpus) -> Iterator[ThreadingHTTPServer]:
    with serve(RangeHandler, root=corpus[0], requests=[], cut={}) as srv:
        yield srv


def _checksums(www: Path) -> dict[str, dict[str, str]]:
    return {
        p.name: {
            "sha256": hashlib.sha256(p.read_bytes()).hexdigest(),
            "md5": hashlib.md5(p.read_bytes()).hexdigest(),
        }
        for p in (www / "12").iterdir()
    }


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_download_resume_checksum_extract_and_manifests(corpus, server, tmp_path, capsys):
    www, texts, _ = corpus
    out = tmp_path / "data"
    mirrors = [f"{server.url}/gone", f"{server.url}/12"]  # the first mirror answers 404 for everything
    checksums = _checksums(www)
    archive = www / "12" / "train-clean-100.tar.gz"
    half = archive.stat().st_size // 2
    server.cut["/12/train-clean-100.tar.gz"] = half
    with pytest.raises(DownloadError, match="connection closed after"):
        prepare.prepare_librispeech(out, tuple(LAYOUT), mirrors=mirrors, checksums=checksums, jobs=3)
    assert (out / "archives" / "train-clean-100.tar.gz.part").stat().st_size == half
    assert (out / "LibriSpeech" / "dev-clean").is_dir()  # the other archives went through meanwhile

    server.requests.clear()
    manifests = prepare.prepare_librispeech(out, tuple(LAYOUT), mirrors=mirrors, checksums=checksums, jobs=3)
    assert ("/12/train-clean-100.tar.gz", f"bytes={half}-") in server.requests  # resumed, not restarted
    assert {p for p, _ in server.requests} == {"/gone/train-clean-100.tar.gz", "/12/train-clean-100.tar.gz"}
    assert (out / "archives" / "train-clean-100.tar.gz").read_bytes() == archive.read_bytes()

    for subset, path in manifests.items():
        entries = _read(path)
        ids = {Path(e["audio_filepath"]).stem for e in entries}
        assert ids == {u for u in texts if any(u.startswith(f"{s}-") for s in LAYOUT[subset])}
        for e in entries:
            audio = out / e["audio_filepath"]
            assert audio.is_file() and e["text"] == texts[audio.stem].lower()
            assert e["duration"] == pytest.approx(sf.info(audio).duration, abs=1e-4)
    capsys.readouterr()
    server.requests.clear()
    prepare.prepare_librispeech(out, tuple(LAYOUT), mirrors=mirrors, checksums=checksums)
    assert "up to date" in capsys.readouterr().out and not server.requests


def test_checksum_mismatch_is_reported_and_the_file_not_used(corpus, server, tmp_path):
    checksums = _checksums(corpus[0])
    checksums["dev-other.tar.gz"]["sha256"] = "0" * 64
    out = tmp_path / "data"
    with pytest.raises(DownloadError, match=r"dev-other\.tar\.gz: .*sha256 mismatch \(expected 0000"):
        prepare.prepare_librispeech(out, ["dev-other"], mirrors=[f"{server.url}/12"], checksums=checksums)
    assert not (out / "archives" / "dev-other.tar.gz").exists()
    assert not (out / "archives" / "dev-other.tar.gz.part").exists()
    assert not (out / "LibriSpeech").exists() and not (out / "dev-other.jsonl").exists()


def test_existing_tree_and_a_clear_error_for_a_missing_subset(corpus, tmp_path):
    _, texts, src = corpus
    manifests = prepare.prepare_librispeech(tmp_path / "m", ["dev-clean"], src / "LibriSpeech")
    assert len(_read(manifests["dev-clean"])) == 2
    with pytest.raises(PrepareError, match="no train-clean-360 in .*LibriSpeech's layout"):
        prepare.prepare_librispeech(tmp_path / "m", ["train-clean-360"], src)


def test_another_corpus_in_the_layout_names_its_subsets_by_its_checksums(corpus, tmp_path):
    """Mini LibriSpeech's subsets (OpenSLR 31) are not LibriSpeech's: its own checksums make them known."""
    _, _, src = corpus
    shutil.copytree(src / "LibriSpeech" / "dev-clean", tmp_path / "mini" / "dev-clean-2")
    with pytest.raises(PrepareError, match="unknown subset.s. dev-clean-2; choose from train-clean-100"):
        prepare.prepare_librispeech(tmp_path / "m", ["dev-clean-2"], tmp_path / "mini")
    mini = {"train-clean-5.tar.gz": {"md5": "0" * 32}, "dev-clean-2.tar.gz": {"md5": "0" * 32}}
    manifests = prepare.prepare_librispeech(
        tmp_path / "m", ["dev-clean-2"], tmp_path / "mini", checksums=mini
    )
    assert len(_read(manifests["dev-clean-2"])) == 2


def test_official_lm_files_are_fetched_and_converted(corpus, server, tmp_path):
    www = corpus[0]
    sums = {p.name: {"md5": hashlib.md5(p.read_bytes()).hexdigest()} for p in (www / "11").iterdir()}
    arpa, lexicon = prepare.prepare_lm(tmp_path, mirrors=[f"{server.url}/11"], checksums=sums)
    text = arpa.read_text()
    assert text.startswith("\\data\\") and "the cat" in text and "THE" not in text
    assert "didn't\td i d n ' t |" in lexicon.read_text().splitlines()
    server.requests.clear()
    assert prepare.prepare_lm(tmp_path, mirrors=[f"{server.url}/11"], checksums=sums) == (arpa, lexicon)
    assert not server.requests


def test_recipe_trains_and_scores_four_sets_greedy_and_with_the_lm(corpus, tmp_path, tiny_model):
    www, _, src = corpus
    exp = tmp_path / "exp"
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "recipes/librispeech/train.py"),
            *("--preset", "100h", "--data-dir", str(src), "--lm-dir", str(www / "11")),
            *("--out-dir", str(tmp_path / "data"), "--exp-dir", str(exp), "--jobs", "1"),
            *tiny_model,
            *(
                "model.num_layers=2",
                "aux_ctc.layer=1",
                "model.dropout=0.0",
                "data.max_batch_seconds=10",
                "data.min_duration=0.0",
            ),
            *("trainer.max_epochs=1", "trainer.precision=32-true", "trainer.checkpoint_every_n_steps=2"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads((exp / "results.json").read_text())
    sets = ["dev-clean", "dev-other", "test-clean", "test-other"]
    assert list(results["scores"]) == sets
    assert all(list(r) == ["greedy", "beam_lm"] for r in results["scores"].values())
    assert all(r["greedy"]["words"] > 0 and r["greedy"]["wer"] >= 0 for r in results["scores"].values())
    assert results["parameters"] > 0 and results["devices"] == 1
    assert results["lm"]["source"] == "file" and results["lm"]["arpa"].endswith("4-gram.arpa")
    assert results["lm"]["tuned_on"].endswith("dev-clean.jsonl") and results["lm"]["tuning_utterances"] == 2
    report = (exp / "RESULTS.md").read_text()
    assert all(f"| {s} |" in report for s in sets) and "device-hours" in report and "--preset 100h" in report
    assert (exp / "reports" / "beam_lm" / "test-other.jsonl").is_file()
    assert (tmp_path / "data" / "cmvn-train-clean-100.json").is_file()
    assert (tmp_path / "data" / "lm" / "4-gram.arpa").is_file()
