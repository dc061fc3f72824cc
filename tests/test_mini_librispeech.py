"""The Mini LibriSpeech recipe on a fake corpus in OpenSLR's layout: the dev-speaker rule, download with
checksums from loopback HTTP, the LibriSpeech LM and its fallback, and training plus scoring end to end."""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from fake_librispeech import SENTENCES, RangeHandler, make_librispeech
from loopback import serve

from asr.checkpoint import load_checkpoint
from asr.corpora import PrepareError
from asr.corpora import mini_librispeech as mini
from asr.download import DownloadError
from asr.lm import build_arpa
from asr.manifest import read_manifest
from asr.text import CharTokenizer

ROOT = Path(__file__).resolve().parents[1]
LAYOUT = {
    "train-clean-5": {"19": {"198": 2}, "26": {"495": 2}, "32": {"21625": 2}, "118": {"47824": 2}},
    "dev-clean-2": {"84": {"121123": 2}},
}
# the 21 speakers of train-clean-5 that ../shared/data/mini_librispeech.sh extracts
SPEAKERS_21 = (
    "32 118 163 332 460 669 1737 1867 1898 2136 2416 3242 3664 3947 4640 5789 6272 6848 7367 7859 8629"
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, Path]:
    """(folder of archives named like OpenSLR's resources 31 and 11, the source tree)."""
    tmp = tmp_path_factory.mktemp("mini")
    make_librispeech(tmp / "src", LAYOUT)
    www = tmp / "www"
    (www / "31").mkdir(parents=True)
    for subset in LAYOUT:
        with tarfile.open(www / "31" / f"{subset}.tar.gz", "w:gz") as tar:
            tar.add(tmp / "src" / "LibriSpeech" / subset, arcname=f"LibriSpeech/{subset}")
    (www / "11").mkdir()
    with gzip.open(www / "11" / mini.LM_NAME, "wt") as f:
        f.write(build_arpa([t.lower() for t in SENTENCES], 3).upper().replace("\\DATA\\", "\\data\\"))
    return www, tmp / "src"


def _md5s(folder: Path) -> dict[str, dict[str, str]]:
    return {p.name: {"md5": hashlib.md5(p.read_bytes()).hexdigest()} for p in folder.iterdir()}


def test_dev_speakers_are_spread_over_the_sorted_ids():
    speakers = SPEAKERS_21.split()
    assert mini.held_out_speakers(speakers, 2) == ["669", "5789"]
    assert mini.held_out_speakers(list(reversed(speakers)), 3) == ["332", "2416", "6848"]
    for k in (0, 21):
        with pytest.raises(PrepareError, match=f"--dev-speakers {k}: choose 1 to 20 of the 21 speakers"):
            mini.held_out_speakers(speakers, k)


def test_download_with_checksums_gives_dev_clean_2_as_the_dev_set(corpus, tmp_path):
    www, _ = corpus
    sums = _md5s(www / "31")
    with serve(RangeHandler, root=www, requests=[], cut={}) as srv:
        bad = {**sums, "dev-clean-2.tar.gz": {"md5": "0" * 32}}
        with pytest.raises(DownloadError, match=r"dev-clean-2\.tar\.gz: .*md5 mismatch"):
            mini.prepare_mini_librispeech(tmp_path / "bad", mirrors=[f"{srv.url}/31"], checksums=bad)
        data = mini.prepare_mini_librispeech(tmp_path / "data", mirrors=[f"{srv.url}/31"], checksums=sums)
    assert data.details == {"dev_set": "dev-clean-2"}
    assert len(read_manifest(data.train)) == 8 and len(read_manifest(data.dev)) == 2
    assert (tmp_path / "data" / "LibriSpeech" / "train-clean-5").is_dir()


def test_a_tree_without_dev_clean_2_holds_out_speakers(corpus, tmp_path):
    _, src = corpus
    shutil.copytree(src / "LibriSpeech" / "train-clean-5", tmp_path / "tree" / "train-clean-5")
    data = mini.prepare_mini_librispeech(tmp_path / "data", tmp_path / "tree", dev_speakers=1)
    dev = {mini.speaker_of(u.audio_filepath) for u in read_manifest(data.dev)}
    train = {mini.speaker_of(u.audio_filepath) for u in read_manifest(data.train)}
    assert dev == {"32"} and train == {"19", "26", "118"}  # sorted as numbers: 19 26 32 118
    assert data.details["dev_speakers"] == ["32"] and data.details["train_utterances"] == 6


def test_the_librispeech_lm_is_fetched_and_lower_cased(corpus, tmp_path):
    www, _ = corpus
    with serve(RangeHandler, root=www, requests=[], cut={}) as srv:
        arpa = mini.prepare_lm(tmp_path, mirrors=[f"{srv.url}/11"], checksums=_md5s(www / "11"))
        assert mini.prepare_lm(tmp_path, mirrors=[f"{srv.url}/11"]) == arpa  # done: no download
    text = arpa.read_text()
    assert text.startswith("\\data\\") and "the cat" in text and "THE" not in text


def test_recipe_trains_with_pieces_and_falls_back_to_a_transcript_lm(corpus, tmp_path, tiny_model):
    www, src = corpus
    shutil.copytree(
        src / "LibriSpeech" / "train-clean-5", tmp_path / "tree" / "LibriSpeech" / "train-clean-5"
    )
    exp = tmp_path / "exp"
    with serve(RangeHandler, root=www, requests=[], cut={}) as srv:  # no LM under /gone: the fallback
        out = subprocess.run(
            [
                sys.executable,
                str(ROOT / "recipes/mini_librispeech/train.py"),
                *(
                    "--data-dir",
                    str(tmp_path / "tree"),
                    "--dev-speakers",
                    "1",
                    "--lm-mirror",
                    f"{srv.url}/gone",
                ),
                *("--out-dir", str(tmp_path / "data"), "--exp-dir", str(exp), "--jobs", "1"),
                *tiny_model,
                *("model.num_layers=2", "aux_ctc.layer=1"),  # the recipe's character CTC below the pieces
                *("data.max_batch_seconds=10", "data.min_duration=0.0"),
                *("data.pieces=40", "trainer.keep_best=1"),
                *("trainer.max_epochs=1", "trainer.precision=32-true"),
            ],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=ROOT,
        )
    assert out.returncode == 0, out.stderr[-3000:]
    results = json.loads((exp / "results.json").read_text())
    assert list(results["scores"]) == ["dev"] and list(results["scores"]["dev"]) == ["greedy", "beam_lm"]
    assert results["scores"]["dev"]["greedy"]["words"] > 0
    lm = results["lm"]
    assert lm["source"] == "training transcripts" and lm["order"] == 3
    assert "the LibriSpeech LM could not be fetched" in lm["note"] and "/gone/" in lm["note"]
    assert results["details"]["dev_speakers"] == ["32"]
    assert "held out" in (exp / "RESULTS.md").read_text()
    model = load_checkpoint(exp / "model.pt")
    assert model["asr"]["spec"]["tokenizer"]["kind"] == "sentencepiece"
    assert not any("aux_output" in k for k in model["state_dict"])  # training-only, not in the model file
    trained = load_checkpoint(exp / "checkpoints" / "last.ckpt")["state_dict"]
    (manifest,) = (tmp_path / "data").glob("*dev1-train.jsonl")
    chars = CharTokenizer.from_texts(u.text for u in read_manifest(manifest))
    assert trained["aux_output.weight"].shape[0] == chars.vocab_size  # the training text's characters
