"""A fake LibriSpeech-layout corpus of eSpeak speech, and a loopback file server with HTTP ranges, for the
LibriSpeech and Mini LibriSpeech recipe tests (no network)."""

from __future__ import annotations

import re
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import soundfile as sf

from asr.audio import SAMPLE_RATE
from asr.synth import synthesize

SENTENCES = (
    "THE CAT SAT ON THE MAT",
    "A DOG RAN IN THE PARK",
    "SHE READ THE OLD BOOK",
    "WE WALKED HOME AT NIGHT",
    "HE DIDN'T SEE THE BIRD",
    "THE SUN IS VERY BRIGHT",
)
# subset -> speaker -> chapter -> number of utterances
LAYOUT = {
    "train-clean-100": {"19": {"198": 4}, "26": {"495": 4}},
    "dev-clean": {"84": {"121123": 2}},
    "dev-other": {"116": {"288045": 2}},
    "test-clean": {"1089": {"134686": 2}},
    "test-other": {"1688": {"142285": 2}},
}


def make_librispeech(root: Path, layout: dict[str, dict[str, dict[str, int]]] = LAYOUT) -> dict[str, str]:
    """Write ``root/LibriSpeech/<subset>/<spk>/<chapter>/`` FLAC files and transcripts per ``layout``
    (subset -> speaker -> chapter -> utterances); returns id -> text."""
    texts = {}
    voices = ("en-us", "en-gb-x-rp+m7", "en+f2")
    n = 0
    for subset, speakers in layout.items():
        for spk, chapters in speakers.items():
            for chapter, count in chapters.items():
                folder = root / "LibriSpeech" / subset / spk / chapter
                folder.mkdir(parents=True)
                lines = []
                for i in range(count):
                    utt, text = f"{spk}-{chapter}-{i:04d}", SENTENCES[n % len(SENTENCES)]
                    wave = synthesize(text, voices[n % len(voices)], rate=170)
                    sf.write(folder / f"{utt}.flac", wave, SAMPLE_RATE, format="FLAC")
                    lines.append(f"{utt} {text}")
                    texts[utt] = text
                    n += 1
                (folder / f"{spk}-{chapter}.trans.txt").write_text("\n".join(lines) + "\n")
    (root / "LibriSpeech" / "README.TXT").write_text("fake LibriSpeech for tests\n")
    return texts


class RangeHandler(BaseHTTPRequestHandler):
    """Serves files from ``server.root`` with ``Range: bytes=N-``; ``server.cut`` maps a path to a byte count
    after which its next response is cut off (once)."""

    def do_GET(self) -> None:
        server = self.server
        server.requests.append((self.path, self.headers.get("Range")))
        path = server.root / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        start = int(match[1]) if match else 0
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        cut = server.cut.pop(self.path, None)
        self.wfile.write(data[start:] if cut is None else data[start : start + cut])
        if cut is not None:
            self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass
