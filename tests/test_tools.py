import subprocess
import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from asr.manifest import write_manifest

ROOT = Path(__file__).resolve().parents[1]


def test_manifest_stats_finds_problems(tmp_path):
    sf.write(tmp_path / "a.wav", np.zeros(16000, np.float32), 16000)
    (tmp_path / "b.wav").write_text("not audio")
    write_manifest(
        tmp_path / "m.jsonl",
        [
            {"audio_filepath": str(tmp_path / "a.wav"), "duration": 2.0, "text": "Café one"},
            {"audio_filepath": str(tmp_path / "b.wav"), "duration": 1.0, "text": "two"},
        ],
    )
    out = subprocess.run(
        [sys.executable, str(ROOT / "tools/manifest_stats.py"), str(tmp_path / "m.jsonl"), "--check-audio"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 1
    assert "2 utterances" in out.stdout
    assert "outside the English tokenizer: {'é': 1}" in out.stdout
    assert "line 1: " in out.stdout and "manifest says 2.00 s, file holds 1.00 s" in out.stdout
    assert f"line 2: {tmp_path / 'b.wav'}: not a readable audio file" in out.stdout
