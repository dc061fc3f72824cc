"""Records each case the reliability tests try and its outcome; RELIABILITY.md is rendered from them.

Outcomes are counted per category. Every count must be deterministic (fixed parameter tables, hypothesis
with ``derandomize=True``), so the generated file only changes when the tests or the library change.
"""

from __future__ import annotations

from collections import Counter, defaultdict

COMMAND = ".venv/bin/python -m pytest -q"
TARGET = "RELIABILITY.md"

RECORDS: defaultdict[str, Counter[str]] = defaultdict(Counter)


def record(category: str, outcome: str) -> None:
    """Count one tried case of ``category`` ending in ``outcome`` (a short, stable label)."""
    RECORDS[category][outcome] += 1


def outcome_of(exc: BaseException | None, ok: str = "result") -> str:
    """A stable label: ``ok`` for no exception, else the exception's type name."""
    return ok if exc is None else type(exc).__name__


def table() -> str:
    """The Markdown table of categories, case counts and outcome counts, in a fixed order."""
    rows = ["| category | cases | outcomes |", "| --- | ---: | --- |"]
    for category in sorted(RECORDS):
        counts = RECORDS[category]
        outcomes = ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))
        rows.append(f"| {category} | {sum(counts.values())} | {outcomes} |")
    total = sum(sum(c.values()) for c in RECORDS.values())
    rows.append(f"| **all** | **{total}** | |")
    return "\n".join(rows)


def render() -> str:
    """The whole of RELIABILITY.md."""
    return HEADER.format(command=COMMAND) + (table() + "\n" + NOTES)


HEADER = """\
# Reliability

<!-- Generated file: do not edit. Written by tests/reliability_plugin.py at the end of a full test run
(`{command}`: only a run of the whole suite, all passing, writes it; hypothesis draws some examples
from the modules loaded, so a partial run would count other cases).
Text outside the table lives in tests/reliability.py. -->

What the toolkit does with bad input, faults and hostile files. Every row below is a set of cases the test
suite tries on each run; an outcome is what the library or the `asr` command did with a case. "result" means
the reader returned normally; an exception name means it refused the input with that error, which always
names the file (and line) and fits on one line. No other outcome is accepted: any other exception, a hang or
a crash fails the suite. Fuzz counts are fixed by hypothesis's `max_examples` with `derandomize=True`.

"""

NOTES = """
## Guarantees and where they are tested

- **Audio** (`asr.audio.load_audio`): a waveform or `AudioError("PATH: problem")`, nothing else, for any
  bytes (fuzzed: random and mutated WAV/FLAC/OGG/MP3). Memory follows the audio actually present, not the
  length a header claims; sample rates outside 1 kHz-768 kHz, NaN/inf samples and float samples beyond
  ±1e6 are refused; devices and FIFOs are refused without being opened. `asr transcribe` prints one
  `error: PATH: problem` line per bad file, transcribes the rest and exits 1 (`tests/test_bad_input.py`).
- **Manifests** (`asr.manifest.read_manifest`): a list or `ManifestError("PATH:LINE: problem")` for any bytes.
  Training drops utterances it cannot use with a count per reason and skips unreadable audio, naming
  the file, in the main process and in DataLoader workers.
- **LM and lexicon files** (`asr.decoding.lexicon`: `arpa_unigrams`, `read_lexicon`): a word list or
  `DecoderError("PATH[:LINE]: problem")` for any text, short 1-gram lines and bytes that are not UTF-8
  included (fuzzed).
- **Checkpoints** (`asr.checkpoint`): `save_atomic` writes a temporary file, fsyncs it and renames it over
  the target, so SIGKILL at any moment leaves the old or the new checkpoint, both complete
  (`tests/test_faults.py` kills a writer at seeded random moments). A full disk (ENOSPC, or the kernel's
  file-size limit) raises a one-line `OSError` naming the file and leaves the old checkpoint and no
  temporary file. Temporary files orphaned by a kill are removed by the next save. Loading uses
  `weights_only=True`: a pickle that would run code is refused (`tests/test_checkpoint.py`).
- **Archives** (`asr.download.extract_tar`): absolute paths, `..` escapes, symlinks and hardlinks leading
  outside, device files and link chains are refused before anything is written; setuid bits are dropped
  (`tests/test_download.py`).
- **No shell**: no module in `asr/`, `tools/`, `recipes/` or `benchmarks/` calls `os.system`, `os.popen`
  or `subprocess` with `shell=True`; subprocesses get argument lists (checked by `tests/test_bad_input.py`).
- **Outputs never destroy inputs** (`asr.outputs`): an output that resolves to an input (the same path,
  a symbolic or hard link, a relative path) is refused with exit 6 before any work; `tools/score.py`,
  `tools/build_lm.py` (`--out`, `--lexicon`) and `tools/average_checkpoints.py` check theirs, and
  `average_checkpoints.py` never replaces a training checkpoint with an averaged model. Every output is
  written to a temporary file, fsynced and renamed: a full disk leaves the old file (`tests/test_outputs.py`,
  `tests/test_score.py`, `tests/test_tools.py`).
- **A training run owns its exp_dir** (`asr.train`): `train.lock` is held with `flock` while a run trains;
  a second run exits 6 naming the holder (pid, host, start time) and writes nothing; a killed run's lock
  never blocks. `last.ckpt` holds the latest epoch whatever the validation metric did (and the latest step
  with `trainer.checkpoint_every_n_steps`); a resume appends to `logs/metrics.csv`; a resume whose feature,
  model or tokenizer settings differ from `last.ckpt`'s exits 3 before anything is written; a copied or
  moved exp_dir resumes with its own checkpoint paths (`tests/test_resume.py`).
- **Settings** (`asr.config.validate`): every value whose type does not make it valid is checked against a
  table (sizes and counts, rates, learning rate, betas, precision, accelerator, devices, durations, speed
  factors, ...), the feature and model sections by `asr.spec`; YAML syntax errors name the file and line.
  All exit 3 with one line naming the key (`tests/test_config.py`).
- **Training data and devices**: training or validation data that is missing, not set, empty or all
  filtered out exits 5; data none of whose audio can be read exits 1; `trainer.accelerator=cuda` on a
  machine without a GPU exits 2 (`tests/test_train_errors.py`).
- **Every entry point** (each `asr` subcommand and tools/ script) given a missing input, an output it
  cannot write and a full standard output (`> /dev/full`) ends with its exit code and one `error:` line
  (`tests/test_entry_points.py`).
- **Audio headers**: a WAV whose header declares fewer samples than the file holds (beyond 10 ms) is refused
  like a truncated one (`tests/test_audio.py`).
- **Scores**: with no reference words WER is undefined: "n/a", `null` in JSON, never "400%"; `tools/score.py`
  reads a first word as an id only when every line's has the shape of one (not "2nd" or "1990s"), and
  refuses a pair read as ids beside plain text as ambiguous (exit 2, `tests/test_score.py`).
- **Non-finite training steps**: a batch whose loss or gradient is NaN/inf is skipped and counted, and the
  weights are unchanged (`tests/test_lightning.py`).

## Determinism

On the CPU, two runs with the same seed give identical training losses step for step
(`tests/test_determinism.py`, with a DataLoader worker). On a GPU they need not:

- `F.ctc_loss`'s CUDA backward accumulates gradients with atomic adds, so it is nondeterministic; with
  `torch.use_deterministic_algorithms(True)` PyTorch raises ("ctc_loss_backward_gpu does not have a
  deterministic implementation") instead. Checked by hand on an H200 (torch 2.11, CUDA 13.0, cuDNN 9.19): a
  3x BiLSTM-256 with CTC on the GPU, same seed twice, gave losses that differ from the fourth step (about
  1e-6 relative) and weights that differ by 2.5e-4 after 8 AdamW steps; `cudnn.deterministic = True` did
  not help; the same model with only the CTC loss computed on the CPU gave identical losses and weights.
- cuDNN's RNN kernels are documented as nondeterministic on some cuDNN/CUDA versions (PyTorch's LSTM and
  GRU docs: set `CUBLAS_WORKSPACE_CONFIG=:16:8` or `:4096:2` and `torch.backends.cudnn.deterministic`).
- bf16/fp16 autocast results differ between GPU models and library versions; compare runs on one card.
- DataLoader workers are seeded by Lightning's `seed_everything(workers=True)`; bucketing and SpecAugment
  draw from seeded generators, so the data order is the same on every device.

## Not covered here

Resuming after SIGKILL with identical losses and the death of a DDP rank are tested with the training loop;
multi-hour files with long-form transcription (`asr/longform.py`).
"""
