// The transcription page: upload or record, show timed words, highlight them during playback, click to seek.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { words: [], recorder: null };

function setStatus(text) { $("status").textContent = text; }

function wavBlob(chunks, rate) {
  // 16-bit PCM mono WAV of Float32Array chunks.
  const n = chunks.reduce((sum, c) => sum + c.length, 0);
  const view = new DataView(new ArrayBuffer(44 + 2 * n));
  const text = (offset, s) => { for (let i = 0; i < s.length; i++) view.setUint8(offset + i, s.charCodeAt(i)); };
  text(0, "RIFF"); view.setUint32(4, 36 + 2 * n, true); text(8, "WAVE");
  text(12, "fmt "); view.setUint32(16, 16, true); view.setUint16(20, 1, true); view.setUint16(22, 1, true);
  view.setUint32(24, rate, true); view.setUint32(28, 2 * rate, true); view.setUint16(32, 2, true);
  view.setUint16(34, 16, true); text(36, "data"); view.setUint32(40, 2 * n, true);
  let offset = 44;
  for (const c of chunks) {
    for (let i = 0; i < c.length; i++, offset += 2) {
      const s = Math.max(-1, Math.min(1, c[i]));
      view.setInt16(offset, s < 0 ? s * 0x8000 : s * 0x7fff, true);
    }
  }
  return new Blob([view], { type: "audio/wav" });
}

function showWords(body) {
  state.words = body.words || [];
  const transcript = $("transcript");
  transcript.replaceChildren();
  const rows = $("words").querySelector("tbody");
  rows.replaceChildren();
  state.words.forEach((w, i) => {
    const span = document.createElement("span");
    span.className = "word";
    span.textContent = w.word;
    span.dataset.index = i;
    span.title = `${w.start.toFixed(2)}-${w.end.toFixed(2)} s`;
    span.addEventListener("click", () => { $("player").currentTime = w.start; $("player").play(); });
    transcript.append(span, " ");
    const row = rows.insertRow();
    for (const v of [w.word, w.start.toFixed(2), w.end.toFixed(2), w.confidence.toFixed(2)]) row.insertCell().textContent = v;
  });
  if (!state.words.length) transcript.textContent = body.text || "(no speech recognised)";
  $("words").hidden = !state.words.length;
}

function highlight() {
  const t = $("player").currentTime;
  document.querySelectorAll("#transcript .word").forEach((span) => {
    const w = state.words[Number(span.dataset.index)];
    span.classList.toggle("current", t >= w.start && t < w.end + 0.05);
  });
}

async function transcribe(blob, name) {
  $("player").src = URL.createObjectURL(blob);
  $("player").hidden = false;
  const form = new FormData();
  form.append("file", blob, name);
  form.append("decoder", $("decoder").value);
  form.append("timestamps", "true");
  for (const h of $("hotwords").value.split(/\s+/).filter(Boolean)) form.append("hotword", h);
  const headers = {};
  if ($("key").value) headers.Authorization = `Bearer ${$("key").value}`;
  setStatus(`Transcribing ${name}...`);
  const started = performance.now();
  const response = await fetch("/v1/asr/transcriptions", { method: "POST", body: form, headers });
  const body = await response.json();
  if (!response.ok) {
    if (response.status === 401) $("key-label").hidden = false;
    setStatus(`Error ${response.status}: ${body.error ? body.error.message : response.statusText}`);
    return;
  }
  showWords(body);
  setStatus(`${name}: ${body.duration.toFixed(1)} s of audio in ${((performance.now() - started) / 1000).toFixed(2)} s.`);
}

async function startRecording() {
  const stream = await navigator.mediaDevices.getUserMedia({
    // The browser's own processing distorts speech for recognition: leave the signal as the microphone gives it.
    audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false, channelCount: 1 },
  });
  const context = new AudioContext();
  await context.audioWorklet.addModule("/web/recorder.js");
  const source = context.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(context, "capture");
  const chunks = [];
  node.port.onmessage = (event) => chunks.push(event.data);
  source.connect(node);
  state.recorder = { stream, context, chunks };
  $("record").textContent = "Stop";
  $("record").classList.add("recording");
  setStatus("Recording... press Stop to transcribe.");
}

async function stopRecording() {
  const { stream, context, chunks } = state.recorder;
  state.recorder = null;
  stream.getTracks().forEach((t) => t.stop());
  const rate = context.sampleRate;
  await context.close();
  $("record").textContent = "Record";
  $("record").classList.remove("recording");
  await transcribe(wavBlob(chunks, rate), "recording.wav");
}

$("file").addEventListener("change", (event) => {
  const file = event.target.files[0];
  if (file) transcribe(file, file.name).catch((e) => setStatus(`Error: ${e.message}`));
});
$("record").addEventListener("click", () => {
  (state.recorder ? stopRecording() : startRecording()).catch((e) => setStatus(`Error: ${e.message}`));
});
$("player").addEventListener("timeupdate", highlight);
