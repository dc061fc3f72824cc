"""Smoke runs of every recipe on tiny settings, end to end through their real entry points."""

import json
import subprocess
import sys
from pathlib import Path

from test_an4_prepare import make_an4

ROOT = Path(__file__).resolve().parents[1]


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args], capture_output=True, text=True, timeout=600, cwd=ROOT
    )


def check_results(exp: Path) -> dict:
    results = json.loads((exp / "results.json").read_text())
    assert results["test_cer"] >= 0 and results["test_words"] > 0
    assert (exp / "model.pt").is_file() and (exp / "test_report.jsonl").is_file()
    assert (exp / "config.yaml").is_file() and (exp / "checkpoints" / "last.ckpt").is_file()
    return results


def test_synthetic_demo(tmp_path, tiny_model):
    out = run(
        "recipes/synthetic/train.py",
        *("--out-dir", str(tmp_path / "data"), "--exp-dir", str(tmp_path / "exp")),
        *("--train", "16", "--dev", "4", "--test", "4"),
        *tiny_model,
        "trainer.max_epochs=1",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    results = check_results(tmp_path / "exp")
    assert results["example"]["hypothesis"] is not None
    assert f"test WER {results['test_wer']:.2f}%" in out.stdout


def test_an4_recipe_on_a_fake_tree(tmp_path, tiny_model):
    make_an4(tmp_path / "an4")
    out = run(
        "recipes/an4/train.py",
        *(
            "--data-dir",
            str(tmp_path / "an4"),
            "--out-dir",
            str(tmp_path / "data"),
            "--exp-dir",
            str(tmp_path / "exp"),
        ),
        *tiny_model,
        "trainer.max_epochs=1",
        "data.min_duration=0.0",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert check_results(tmp_path / "exp")["test_words"] == 3  # "NO", "ENTER SIX"


def test_an4_recipe_reports_a_bad_data_dir(tmp_path):
    out = run(
        "recipes/an4/train.py", "--data-dir", str(tmp_path / "nothing"), "--out-dir", str(tmp_path / "d")
    )
    assert out.returncode == 1
    assert out.stderr.startswith("error: ") and "etc" in out.stderr
