import json
import logging
import random

import numpy as np
import pytest
import pytorch_lightning as pl
import soundfile as sf
import torch

from asr.batching import pack_sorted, zero_pad
from asr.config import DataConfig, load_config
from asr.data import (
    AsrDataModule,
    AsrDataset,
    DurationBatchSampler,
    collate,
    padding_fraction,
    select_utterances,
)
from asr.errors import DataError
from asr.manifest import ManifestError, Utterance, read_manifest, write_manifest
from asr.text import CharTokenizer, ctc_min_frames
from asr.train import train


def _durations(n=2000, seed=0):
    rng = random.Random(seed)
    return [min(max(rng.lognormvariate(1.8, 0.5), 0.5), 30.0) for _ in range(n)]


def test_bucketing_respects_budget_and_pads_little():
    d = _durations()
    s = DurationBatchSampler(d, max_batch_seconds=120, seed=1)
    batches = list(s)
    assert sorted(i for b in batches for i in b) == list(range(len(d)))
    assert all(max(d[i] for i in b) * len(b) <= 120 or len(b) == 1 for b in batches)
    assert padding_fraction(batches, d) < 0.05


def test_shuffles_between_epochs_and_sortagrad():
    d = _durations(500)
    s = DurationBatchSampler(d, 60, seed=3, sorted_first_epoch=True)
    first = list(s)
    assert [max(d[i] for i in b) for b in first] == sorted(max(d[i] for i in b) for b in first)
    s.set_epoch(1)
    second = list(s)
    s.set_epoch(2)
    assert list(s) != second and sorted(map(tuple, second)) == sorted(map(tuple, first))
    assert len(s) == len(second)


@pytest.mark.parametrize("world", [2, 3])
def test_ranks_see_disjoint_data_in_step(world):
    d = _durations(301)
    per_rank = [DurationBatchSampler(d, 50, seed=5, num_replicas=world, rank=r) for r in range(world)]
    for s in per_rank:
        s.set_epoch(4)
    lists = [list(s) for s in per_rank]
    assert len({len(x) for x in lists}) == 1 and all(len(x) == len(s) for x, s in zip(lists, per_rank))
    n_batches = len(per_rank[0].batches)
    seen = [tuple(b) for x in lists for b in x]
    assert len(seen) == n_batches + (-n_batches % world)  # only the padding batches repeat
    assert len(set(seen)) == n_batches


def test_eval_sharding_without_padding():
    d = _durations(101)
    shards = [
        list(DurationBatchSampler(d, 50, shuffle=False, num_replicas=2, rank=r, pad_to_replicas=False))
        for r in (0, 1)
    ]
    assert sorted(i for s in shards for b in s for i in b) == list(range(101))


def test_ctc_min_frames():
    assert ctc_min_frames([1, 2, 3]) == 3
    assert ctc_min_frames([1, 1, 2, 2, 2]) == 8


def test_select_utterances_reports_each_reason(caplog):
    tok = CharTokenizer.english()
    utts = [
        Utterance("a.wav", 1.0, "hello", 1),
        Utterance("b.wav", 0.05, "hi", 2),
        Utterance("c.wav", 50.0, "long", 3),
        Utterance("d.wav", 1.0, "naïve", 4),
        Utterance("e.wav", 0.3, "far too many letters for so little audio", 5),
    ]
    with caplog.at_level(logging.INFO):
        kept = select_utterances(utts, tok, lambda d: int(d * 25), 0.1, 20.0, "m.jsonl")
    assert [u.line for u, _ in kept] == [1]
    text = caplog.text
    for reason in ["shorter than", "longer than", "outside the vocabulary", "label too long", "m.jsonl:4"]:
        assert reason in text
    assert "'ï' at 2" in text


def test_dataset_and_collate_skip_unreadable(tmp_path, caplog):
    sf.write(tmp_path / "a.wav", np.zeros(1600, np.float32), 16000)
    sf.write(tmp_path / "b.wav", np.ones(800, np.float32) * 0.1, 8000)
    (tmp_path / "bad.wav").write_text("not audio")
    tok = CharTokenizer.english()
    entries = [
        (Utterance(str(tmp_path / n), 0.1, "ab", 1), tok.encode("ab")) for n in ("a.wav", "b.wav", "bad.wav")
    ]
    ds = AsrDataset(entries)
    with caplog.at_level(logging.WARNING):
        batch = collate([ds[0], ds[1], ds[2]])
    assert "bad.wav" in caplog.text
    assert batch.waves.shape == (2, 1600) and batch.wave_lens.tolist() == [1600, 1600]
    assert batch.targets.tolist() == [tok.encode("ab")] * 2 and batch.ids == ["a", "b"]
    empty = collate([None])
    assert len(empty) == 0 and empty.skipped == 1 and empty.waves.shape == (0, 0)


def test_audio_cache_decodes_each_file_once_within_its_budget(tmp_path, caplog):
    for name, n in (("a.wav", 16000), ("b.wav", 8000)):
        sf.write(tmp_path / name, np.full(n, 0.25, np.float32), 16000)
    (tmp_path / "bad.wav").write_text("not audio")
    tok = CharTokenizer.english()
    entries = [
        (Utterance(str(tmp_path / n), 1.0, "ab", 1), tok.encode("ab")) for n in ("a.wav", "b.wav", "bad.wav")
    ]
    ds = AsrDataset(entries, cache_bytes=16000 * 4)  # room for a.wav only
    first = [ds[i] for i in range(3)]
    assert first[2] is None and sorted(ds.cache) == [0] and ds.cached_bytes == 16000 * 4
    for name in ("a.wav", "b.wav"):
        (tmp_path / name).unlink()  # a cached file is not read again; one over the budget is
    assert torch.equal(ds[0].wave, first[0].wave)
    with caplog.at_level(logging.WARNING):
        assert ds[1] is None and ds[2] is None
    assert "b.wav" in caplog.text and "bad.wav" in caplog.text
    batch = collate([ds[0], first[1]])
    batch.waves.zero_()  # a batch is a copy: the cached wave is untouched
    assert float(ds[0].wave.min()) == 0.25
    assert AsrDataset(entries).cache_bytes == 0


def test_manifest_round_trip_and_relative_paths(tmp_path):
    n = write_manifest(
        tmp_path / "m.jsonl", [{"audio_filepath": str(tmp_path / "x.wav"), "duration": 1.5, "text": "hi"}]
    )
    assert n == 1
    assert json.loads((tmp_path / "m.jsonl").read_text())["audio_filepath"] == "x.wav"
    (utt,) = read_manifest(tmp_path / "m.jsonl")
    assert utt.audio_filepath == str(tmp_path / "x.wav") and utt.duration == 1.5 and utt.line == 1


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'{"audio_filepath": "a.wav", "duration": 1.0', "m.jsonl:2: malformed JSON"),
        (b'{"audio_filepath": "a.wav", "text": "x"}', "m.jsonl:2: missing key(s) duration"),
        (b'{"audio_filepath": "a.wav", "duration": -1, "text": "x"}', "duration must be a positive number"),
        (b'{"audio_filepath": "a.wav", "duration": 1, "text": "\xff"}', "m.jsonl:2: not valid UTF-8"),
        (b"[1, 2]", "expected a JSON object"),
    ],
)
def test_bad_manifest_lines(tmp_path, line, message):
    good = b'{"audio_filepath": "a.wav", "duration": 1.0, "text": "ok"}\n'
    (tmp_path / "m.jsonl").write_bytes(good + line + b"\n")
    with pytest.raises(ManifestError) as e:
        read_manifest(tmp_path / "m.jsonl")
    assert message in str(e.value) and "\n" not in str(e.value)


def test_sampler_resumes_mid_epoch_with_the_next_unseen_batch():
    d = _durations(300)
    full = DurationBatchSampler(d, 40, seed=7, num_replicas=2, rank=1)
    full.set_epoch(3)
    batches = list(full)
    state = full.state_dict(5)
    assert state == {"epoch": 3, "position": 5}
    resumed = DurationBatchSampler(d, 40, seed=7, num_replicas=2, rank=1)
    resumed.load_state_dict(state)
    resumed.set_epoch(3)  # Lightning sets the same epoch again: the position is kept
    assert list(resumed) == batches[5:]
    assert len(resumed) == len(batches)  # the epoch's length (and so the LR schedule) is unchanged
    assert list(resumed) == batches[5:]  # again (a loader with workers iterates its sampler twice)
    assert full.state_dict(len(batches)) == {"epoch": 4, "position": 0}  # an epoch-end checkpoint
    resumed.set_epoch(4)
    full.set_epoch(4)
    assert list(resumed) == list(full)  # the next epoch from its top


def test_speed_perturbation_one_factor_per_batch_within_budget():
    d = _durations(400)
    s = DurationBatchSampler(d, 60, seed=2, speeds=[0.9, 1.0, 1.1])
    first = list(s)
    assert all(len({f for _, f in b}) == 1 for b in first)
    assert {b[0][1] for b in first} == {0.9, 1.0, 1.1}
    assert all(max(d[i] / f for i, f in b) * len(b) <= 60 or len(b) == 1 for b in first)
    assert sorted(i for b in first for i, _ in b) == list(range(len(d)))
    assert list(s) == first  # drawn from the seed and epoch: the same again (and after resuming)
    s.set_epoch(1)
    assert [[f for _, f in b] for b in list(s)] != [[f for _, f in b] for b in first]


def test_speed_factor_travels_with_the_batch(tmp_path):
    sf.write(tmp_path / "a.wav", np.zeros(16000, np.float32), 16000)
    tok = CharTokenizer.english()
    ds = AsrDataset([(Utterance(str(tmp_path / "a.wav"), 1.0, "ab", 1), tok.encode("ab"))] * 2)
    assert ds[0].speed == 1.0 and ds[(0, 0.9)].speed == 0.9
    batch = collate([ds[(0, 1.1)], ds[(1, 1.1)]])
    assert batch.speed == 1.1 and batch.wave_lens.tolist() == [16000, 16000]  # applied on the device


def test_pack_sorted_and_zero_pad():
    assert pack_sorted([3.0, 1.0, 2.0, 10.0, 1.0], budget=4.0) == [
        [1, 4],
        [2],
        [0],
        [3],
    ]  # 10 alone: over budget
    assert pack_sorted([], 4.0) == []
    padded = zero_pad([torch.tensor([1, 2]), torch.tensor([3])], width=4)
    assert padded.tolist() == [[1, 2, 0, 0], [3, 0, 0, 0]] and padded.dtype == torch.long
    assert zero_pad([torch.tensor([], dtype=torch.long)], width=1).shape == (1, 1)


def test_missing_or_unusable_data_is_a_data_error(tmp_path):
    module = AsrDataModule(DataConfig(), CharTokenizer.english(), lambda d: 10**9)
    with pytest.raises(DataError, match="data.train_manifest is not set"):
        module.dataset("train")
    write_manifest(tmp_path / "m.jsonl", [{"audio_filepath": "a.wav", "duration": 50.0, "text": "too long"}])
    module = AsrDataModule(
        DataConfig(train_manifest=str(tmp_path / "m.jsonl")), CharTokenizer.english(), lambda d: 1
    )
    with pytest.raises(DataError, match="m.jsonl: no usable utterances"):
        module.dataset("train")


@pytest.mark.parametrize("workers", [0, 1])
def test_each_training_epoch_has_its_own_batch_order_and_speeds(corpus, tiny_model, tmp_path, workers):
    """Through Lightning's loop, as the sampler's own test cannot show: Lightning must reach the sampler's
    ``set_epoch``, or every epoch repeats the first one's order and speed factors."""
    epochs: dict[int, list[tuple[tuple[str, ...], float]]] = {}

    class Record(pl.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            epochs.setdefault(trainer.current_epoch, []).append((tuple(batch.ids), batch.speed))

    cfg = load_config(
        None,
        [
            *tiny_model,
            f"data.train_manifest={corpus['train']}",
            f"data.val_manifest={corpus['dev']}",
            f"exp_dir={tmp_path / 'exp'}",
            f"data.num_workers={workers}",
            "data.max_batch_seconds=12",
            "data.speed_perturb=[0.9,1.0,1.1]",
            "trainer.max_epochs=3",
            "trainer.threads=1",
        ],
    )
    train(cfg, [Record()])
    assert sorted(epochs) == [0, 1, 2]
    for e in (1, 2):
        sampler = DurationBatchSampler(
            [u.duration for u in read_manifest(corpus["train"])], 12, seed=cfg.seed, speeds=[0.9, 1.0, 1.1]
        )
        sampler.set_epoch(e)
        assert [b for b, _ in epochs[e]] != [b for b, _ in epochs[0]]
        assert [s for _, s in epochs[e]] == [b[0][1] for b in sampler]  # the factors drawn for epoch e
