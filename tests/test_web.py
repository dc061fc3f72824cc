"""The web page at ``/``, in a real headless Chromium driven by Playwright: upload, record, timings, seeking.

Needs Debian's ``chromium`` (``.ci/run`` installs it) and pip's ``playwright``; without them these tests skip
and say why.
"""

from __future__ import annotations

import base64
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import asr
from asr.audio import SAMPLE_RATE, load_audio, to_model_rate
from asr.manifest import read_manifest
from asr.serve.app import create_app
from asr.serve.runner import background

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
sync_api = pytest.importorskip("playwright.sync_api", reason="pip's playwright is not installed")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (Debian package 'chromium')")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]


@pytest.fixture(scope="module")
def served(memorised, tmp_path_factory):
    """The memorising model, one utterance it knows, the same with silence around it, and its transcript."""
    checkpoint, manifest = memorised
    path = Path(read_manifest(manifest)[0].audio_filepath)
    padded = tmp_path_factory.mktemp("web") / "padded.wav"
    silence = np.zeros(SAMPLE_RATE, np.float32)
    sf.write(
        padded,
        np.concatenate([silence, load_audio(path), 3 * [silence]][0:2] + [np.tile(silence, 3)]),
        SAMPLE_RATE,
    )
    transcriber = asr.load_model(checkpoint)
    (expected,) = transcriber.transcribe([path], timestamps=True)
    return transcriber, path, padded, expected


def _page(playwright, url: str, microphone: Path):
    browser = playwright.chromium.launch(
        executable_path=CHROMIUM, args=[*FLAGS, f"--use-file-for-fake-audio-capture={microphone}"]
    )
    page = browser.new_page()
    page.goto(url)
    return browser, page


def _played_wav(page) -> np.ndarray:
    """The audio the page sent and now plays (its player's blob), as samples."""
    encoded = page.evaluate(
        """async () => {
            const blob = await fetch(document.getElementById('player').src);
            const bytes = new Uint8Array(await blob.arrayBuffer());
            let text = '';
            for (let i = 0; i < bytes.length; i += 0x8000) {
                text += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
            }
            return btoa(text);
        }"""
    )
    samples, rate = sf.read(io.BytesIO(base64.b64decode(encoded)), dtype="float32")
    return to_model_rate(samples, rate)


def test_upload_shows_timed_words_highlights_and_seeks(served):
    transcriber, path, padded, expected = served
    with background(create_app(transcriber)) as url, sync_api.sync_playwright() as p:
        browser, page = _page(p, url, padded)
        page.set_input_files("#file", str(path))
        page.wait_for_selector("#transcript .word", timeout=60_000)
        words = page.locator("#transcript .word").all_inner_texts()
        assert " ".join(words) == expected.text and len(words) > 2
        assert page.locator("#words tbody tr").count() == len(expected.words)
        last = len(expected.words) - 1
        page.locator("#transcript .word").nth(last).click()
        current = page.evaluate("document.getElementById('player').currentTime")
        assert current == pytest.approx(expected.words[last].start, abs=0.05)
        page.evaluate(
            "t => { const p = document.getElementById('player'); p.pause(); p.currentTime = t;"
            " p.dispatchEvent(new Event('timeupdate')); }",
            (expected.words[0].start + expected.words[0].end) / 2,
        )
        assert page.locator("#transcript .word.current").all_inner_texts() == [expected.words[0].text]
        browser.close()


def test_microphone_recording_is_transcribed(served):
    transcriber, path, padded, expected = served
    speech = sf.info(path).duration
    with background(create_app(transcriber)) as url, sync_api.sync_playwright() as p:
        browser, page = _page(p, url, padded)
        page.click("#record")
        page.wait_for_selector("#record.recording")
        page.wait_for_timeout(int(1000 * (speech + 2)))  # the fake microphone plays the file from its start
        page.click("#record")
        page.wait_for_function("document.querySelectorAll('#transcript .word').length > 0", timeout=60_000)
        shown = " ".join(page.locator("#transcript .word").all_inner_texts())
        recorded = _played_wav(page)
        browser.close()
    (heard,) = transcriber.transcribe([recorded])
    assert shown == heard.text  # the page shows the transcript of what it recorded
    # What it recorded is the file at its own level: the browser's gain control and noise suppression are off.
    source = load_audio(path)
    ratio = np.sqrt(np.sum(recorded**2) / np.sum(source**2))  # the silence around the speech adds nothing
    assert 0.8 < ratio < 1.25, ratio
