"""The LightningModule: schedule, the skipping of steps with a non-finite loss or gradient, and its training
step outside a Trainer."""

import copy
import dataclasses

import pytest
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader

from asr.batching import zero_pad
from asr.config import AuxCTCConfig, Config, ModelConfig, OptimConfig
from asr.data import Batch, collate
from asr.lightning import CTCModule, build_optimizer, ctc_loss_sum, padded_ctc_min_frames, warmup_cosine
from asr.recognizer import Recognizer
from asr.spec import ModelSpec
from asr.text import CharTokenizer, SentencePieceTokenizer, ctc_min_frames


def test_warmup_cosine():
    assert warmup_cosine(0, 10, 100, 0.1) == pytest.approx(0.1)
    assert warmup_cosine(9, 10, 100, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(10, 10, 100, 0.1) == pytest.approx(1.0)
    assert warmup_cosine(55, 10, 100, 0.1) == pytest.approx(0.55)
    assert warmup_cosine(100, 10, 100, 0.1) == pytest.approx(0.1)
    assert warmup_cosine(500, 10, 100, 0.1) == pytest.approx(0.1)


def test_an_utterance_without_a_ctc_alignment_adds_neither_loss_nor_tokens():
    """Labels "1 2 2" need 4 frames (a blank between the repeats): with 3 the utterance has no alignment, and
    the batch's loss per token is the other utterance's alone, however long the unalignable one is."""
    torch.manual_seed(0)
    log_probs = torch.randn(2, 6, 4).log_softmax(-1)
    targets = torch.tensor([[1, 2, 2], [3, 1, 0]])
    target_lens = torch.tensor([3, 2])
    alone = ctc_loss_sum(log_probs[1:], torch.tensor([6]), targets[1:, :2], target_lens[1:])
    assert alone[1] == 2 and alone[0] > 0
    for frames, tokens in [(3, 2), (4, 5)]:
        loss, counted = ctc_loss_sum(log_probs, torch.tensor([frames, 6]), targets, target_lens)
        assert counted == tokens
        if frames == 3:
            assert loss == pytest.approx(float(alone[0]))
        else:
            assert loss > alone[0]


def test_padded_ctc_min_frames_is_ctc_min_frames_per_row():
    g = torch.Generator().manual_seed(0)
    rows = [torch.randint(1, 3, (n,), generator=g).tolist() for n in (7, 0, 3, 12, 1)]  # many repeats
    lens = torch.tensor([len(r) for r in rows])
    padded = zero_pad([torch.tensor(r, dtype=torch.long) for r in rows], width=1)
    assert padded_ctc_min_frames(padded, lens).tolist() == [ctc_min_frames(r) for r in rows]


def test_warmup_stable_decay():
    """With a hold the peak lasts ``hold`` steps after warm-up; the decay then runs its whole cosine."""
    assert warmup_cosine(9, 10, 100, 0.1, hold=50) == pytest.approx(1.0)
    assert warmup_cosine(59, 10, 100, 0.1, hold=50) == pytest.approx(1.0)
    assert warmup_cosine(60, 10, 100, 0.1, hold=50) == pytest.approx(1.0)
    assert warmup_cosine(80, 10, 100, 0.1, hold=50) == pytest.approx(0.55)
    assert warmup_cosine(100, 10, 100, 0.1, hold=50) == pytest.approx(0.1)


@pytest.mark.parametrize("hold_fraction", [0.0, 0.5])
def test_the_trainers_schedule_holds_the_peak_for_its_share(tmp_path, hold_fraction):
    """5 steps, 1 of warm-up: holding half of the other 4 keeps the peak 2 steps longer than the cosine."""
    tok = CharTokenizer.english()
    cfg = _cfg()
    cfg.optim.warmup_steps = 1
    cfg.optim.hold_fraction = hold_fraction
    lrs = []

    class Record(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            lrs.append(trainer.optimizers[0].param_groups[0]["lr"])

    module = _module(cfg, tok)
    _trainer(tmp_path, callbacks=[Record()]).fit(
        module, DataLoader([_batch(tok, False)] * 5, batch_size=None)
    )
    expected = [warmup_cosine(s, 1, 4, cfg.optim.final_lr_ratio, int(hold_fraction * 4)) for s in range(5)]
    assert lrs == pytest.approx([cfg.optim.lr * m for m in expected])
    assert sum(m == 1.0 for m in expected) == (4 if hold_fraction else 2)
    assert lrs[-1] == pytest.approx(cfg.optim.lr * cfg.optim.final_lr_ratio)  # the last step's, as promised


def _batch(tok: CharTokenizer, poison: bool) -> Batch:
    waves = torch.randn(2, 16000) * 0.1
    if poison:
        waves[0, 100] = float("nan")
    targets = torch.tensor([tok.encode("ab"), tok.encode("cd")])
    return Batch(waves, torch.tensor([16000, 16000]), targets, torch.tensor([2, 2]), ["a", "b"], ["ab", "cd"])


def _module(cfg: Config, tok: CharTokenizer) -> CTCModule:
    return CTCModule(Recognizer(ModelSpec(cfg.features, cfg.model, tok.to_dict())), cfg)


def _cfg() -> Config:
    return Config(model=ModelConfig(hidden_size=16, num_layers=1, conv_channels=4))


def _trainer(tmp_path, epochs: int = 1, progress_bar: bool = False, callbacks=()) -> pl.Trainer:
    """A bare Lightning Trainer: no logger, checkpoints or summary."""
    return pl.Trainer(
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=progress_bar,
        enable_model_summary=False,
        callbacks=list(callbacks),
        default_root_dir=tmp_path,
    )


class Snapshot(pl.Callback):
    """The module's weights after each training batch."""

    def __init__(self) -> None:
        self.weights: list[list[torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.weights.append([p.detach().clone() for p in pl_module.parameters()])


def test_non_finite_step_is_skipped_and_counted(tmp_path):
    tok = CharTokenizer.english()
    cfg = _cfg()
    module = _module(cfg, tok)
    batches = [_batch(tok, False), _batch(tok, True), _batch(tok, False)]
    snapshot = Snapshot()
    trainer = _trainer(tmp_path, callbacks=[snapshot])
    trainer.fit(module, DataLoader(batches, batch_size=None))
    assert module.skipped_steps == 1
    assert all(torch.isfinite(p).all() for p in module.parameters())
    before, after_poison, after_good = snapshot.weights
    assert all(torch.equal(a, b) for a, b in zip(before, after_poison))  # the poisoned step changed nothing
    assert any(not torch.equal(a, b) for a, b in zip(after_poison, after_good))  # training went on


def test_unreadable_files_are_counted_per_epoch_and_an_empty_batch_moves_no_weight(tmp_path, caplog):
    tok = CharTokenizer.english()
    cfg = _cfg()
    batches = [_batch(tok, False), collate([None, None, None]), _batch(tok, False)]
    batches[0].skipped, batches[2].skipped = 2, 1  # as collate counts files it could not read
    module = _module(cfg, tok)
    snapshot = Snapshot()
    trainer = _trainer(tmp_path, callbacks=[snapshot])
    with caplog.at_level("WARNING", logger="asr.lightning"):
        trainer.fit(module, DataLoader(batches, batch_size=None))
    assert "epoch 0: 6 unreadable training file(s) skipped" in caplog.text  # the empty batch's 3 included
    assert trainer.global_step == 3 and module.skipped_steps == 0
    before, after_empty, _ = snapshot.weights
    assert all(torch.equal(a, b) for a, b in zip(before, after_empty))  # no AdamW step without a file


def test_specaugment_and_vtlp_start_at_their_step(tmp_path, monkeypatch):
    """Masks and VTLP warps are drawn only from optimiser step ``specaug.start_step`` on (counted across
    epochs), a warp factor per utterance within ``1 +- specaug.vtlp``."""
    import asr.lightning

    tok = CharTokenizer.english()
    cfg = _cfg()
    cfg.specaug.start_step, cfg.specaug.vtlp = 3, 0.1
    module = _module(cfg, tok)
    masked_at, warps = [], []
    real = asr.lightning.spec_augment

    def recording(*args, **kwargs):
        masked_at.append(module.global_step)
        return real(*args, **kwargs)

    def warp_hook(frontend, args):
        if module.training:
            warps.append((module.global_step, args[2]))

    monkeypatch.setattr(asr.lightning, "spec_augment", recording)
    module.recognizer.frontend.register_forward_pre_hook(warp_hook)
    trainer = _trainer(tmp_path, epochs=2)
    trainer.fit(module, DataLoader([_batch(tok, False)] * 3, batch_size=None))
    assert masked_at == [3, 4, 5]
    assert [step for step, warp in warps if warp is None] == [0, 1, 2]
    drawn = torch.stack([warp for step, warp in warps if step >= 3])
    assert (
        drawn.shape == (3, 2) and ((drawn - 1).abs() <= 0.1).all() and len(set(drawn.flatten().tolist())) == 6
    )


@pytest.mark.parametrize("shown", [False, True])
def test_training_loss_reaches_the_progress_bar_only_when_shown(tmp_path, shown):
    """Lightning reads progress-bar values on the host after every step (a GPU sync): none without a bar."""
    tok = CharTokenizer.english()
    cfg = _cfg()
    cfg.trainer.progress_bar = shown
    module = _module(cfg, tok)
    trainer = _trainer(tmp_path, progress_bar=shown)
    trainer.fit(module, DataLoader([_batch(tok, False)] * 2, batch_size=None))
    assert ("train/loss" in trainer.progress_bar_metrics) == shown
    assert "train/loss" in trainer.logged_metrics


def test_fit_step_outside_a_trainer_is_the_trainers_step(tmp_path):
    """The benchmarks' step (config optimiser, clipping, skipping) updates the weights as Trainer.fit does."""
    tok = CharTokenizer.english()
    cfg = _cfg()
    cfg.model.dropout = 0.0
    cfg.specaug.freq_masks = cfg.specaug.time_masks = 0
    cfg.optim.lr = 0.01
    cfg.optim.warmup_steps = 1  # the schedule's first multiplier is then 1: the config's lr
    batch = _batch(tok, False)
    fitted = _module(cfg, tok)
    stepped = copy.deepcopy(fitted)
    start = [p.detach().clone() for p in stepped.parameters()]
    _trainer(tmp_path).fit(fitted, DataLoader([batch], batch_size=None))
    optimizer = build_optimizer(stepped, cfg.optim)
    assert [g["lr"] for g in optimizer.param_groups] == [0.01, 0.01]
    assert [g["weight_decay"] for g in optimizer.param_groups] == [cfg.optim.weight_decay, 0.0]
    assert torch.isfinite(stepped.fit_step(batch, optimizer))
    assert any(not torch.equal(a, b) for a, b in zip(start, stepped.parameters()))
    for a, b in zip(fitted.parameters(), stepped.parameters()):
        torch.testing.assert_close(a, b)
    before = [p.detach().clone() for p in stepped.parameters()]
    assert not torch.isfinite(stepped.fit_step(_batch(tok, True), optimizer))
    assert all(torch.equal(a, b) for a, b in zip(before, stepped.parameters()))  # the poisoned step: skipped


def test_weight_noise_perturbs_the_forward_and_never_the_kept_weights(tmp_path):
    """From ``optim.weight_noise_start`` each batch runs on RNN weights with Gaussian noise of the configured
    std and its gradient is taken there; the optimiser steps from the clean weights, which move by AdamW's
    small step only."""
    tok = CharTokenizer.english()
    cfg = _cfg()
    cfg.model.dropout = 0.0
    cfg.specaug.freq_masks = cfg.specaug.time_masks = 0
    cfg.optim.lr, cfg.optim.warmup_steps = 1e-4, 1
    cfg.optim.weight_noise, cfg.optim.weight_noise_start = 0.05, 2
    module = _module(cfg, tok)
    batch = _batch(tok, False)
    seen, kept, grads, clean_grads = [], [], [], []

    def matrices(m: CTCModule) -> list[torch.Tensor]:
        return [p for p in m.recognizer.encoder.rnns.parameters() if p.ndim >= 2]

    def weights():
        return [p.detach().clone() for p in matrices(module)]

    first = module.recognizer.encoder.rnns[0]
    first.register_forward_pre_hook(lambda m, args: seen.append(weights()) if m is first else None)

    class Record(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            kept.append(weights())

        def on_before_optimizer_step(self, trainer, pl_module, optimizer):
            grads.append([p.grad.clone() for p in matrices(pl_module)])
            twin = copy.deepcopy(pl_module)  # the clean weights' gradient, by the same loss
            twin.zero_grad()
            twin.train_loss(batch).backward()
            clean_grads.append([p.grad for p in matrices(twin)])

    _trainer(tmp_path, callbacks=[Record()]).fit(module, DataLoader([batch] * 5, batch_size=None))
    kept.append(weights())
    for step in range(5):
        noise = torch.cat([(s - k).flatten() for s, k in zip(seen[step], kept[step])])
        moved = max((a - b).abs().max() for a, b in zip(kept[step + 1], kept[step]))
        assert 0 < moved < 3 * cfg.optim.lr  # AdamW's step from the clean weights: no noise left behind
        same_grad = all(torch.allclose(g, c, atol=1e-6) for g, c in zip(grads[step], clean_grads[step]))
        if step < 2:
            assert torch.equal(noise, torch.zeros_like(noise)) and same_grad
        else:
            assert noise.std() == pytest.approx(0.05, rel=0.1) and abs(noise.mean()) < 0.005
            assert not same_grad  # the gradient was taken at the noisy weights


def _aux_cfg(reduce_after: int = 0) -> Config:
    model = ModelConfig(hidden_size=16, num_layers=2, conv_channels=4, dropout=0.0, reduce_after=reduce_after)
    cfg = Config(model=model)
    cfg.specaug.freq_masks = cfg.specaug.time_masks = 0
    cfg.aux_ctc.layer, cfg.aux_ctc.weight = 1, 0.25
    return cfg


@pytest.mark.parametrize("reduce_after", [0, 1])
def test_auxiliary_ctc_mixes_the_lower_layers_loss_with_the_top_ones(reduce_after):
    """Intermediate CTC: (1 - w) * top layer's CTC + w * CTC of layer 1 through its own output layer, at layer
    1's frame rate when the layer above it runs at half that rate (pyramidal)."""
    tok = CharTokenizer.english()
    cfg = _aux_cfg(reduce_after)
    module = _module(cfg, tok)
    plain = CTCModule(module.recognizer, dataclasses.replace(cfg, aux_ctc=AuxCTCConfig()))  # aux off
    batch = _batch(tok, False)
    total = module.train_loss(batch)
    feats, feat_lens = module.recognizer.frontend(batch.waves, batch.wave_lens)
    outputs, out_lens, _ = module.recognizer.encoder.layer_outputs(feats, feat_lens)
    assert out_lens[1].tolist() == [n // 2 if reduce_after else n for n in out_lens[0].tolist()]
    log_probs = torch.log_softmax(module.aux_output(outputs[0]), dim=-1).transpose(0, 1)
    aux = torch.nn.functional.ctc_loss(
        log_probs, batch.targets, out_lens[0], batch.target_lens, reduction="sum"
    )
    expected = 0.75 * plain.train_loss(batch) + 0.25 * aux / batch.target_lens.sum()
    torch.testing.assert_close(total, expected)
    total.backward()
    assert module.aux_output.weight.grad.abs().sum() > 0
    assert not any(k.startswith("aux_output") for k in module.recognizer.state_dict())  # not in the model


def test_self_conditioned_ctc_takes_the_intermediate_loss_on_the_encoders_own_posteriors():
    """With model.condition_layer the intermediate loss reads the encoder's conditioning posteriors, which
    the model file keeps, and there is no separate training-only output layer."""
    tok = CharTokenizer.english()
    cfg = _aux_cfg()
    cfg.model.condition_layer = 1
    module = _module(cfg, tok)
    assert not hasattr(module, "aux_output")
    batch = _batch(tok, False)
    total = module.train_loss(batch)
    encoder = module.recognizer.encoder
    feats, feat_lens = module.recognizer.frontend(batch.waves, batch.wave_lens)
    outputs, out_lens, inter = encoder.layer_outputs(feats, feat_lens)
    top = torch.nn.functional.ctc_loss(
        encoder.log_probs(outputs[1]).transpose(0, 1),
        batch.targets,
        out_lens[1],
        batch.target_lens,
        reduction="sum",
    )
    aux = torch.nn.functional.ctc_loss(
        inter.transpose(0, 1), batch.targets, out_lens[0], batch.target_lens, reduction="sum"
    )
    torch.testing.assert_close(total, (0.75 * top + 0.25 * aux) / batch.target_lens.sum())
    total.backward()
    assert encoder.inter_output.weight.grad.abs().sum() > 0 and encoder.condition.weight.grad.abs().sum() > 0
    assert {"encoder.inter_output.weight", "encoder.condition.weight"} <= set(module.recognizer.state_dict())


def test_auxiliary_ctc_under_pieces_spells_the_text_in_characters(tmp_path):
    texts = ["the cat sat on the mat", "a dog ran in the fog"] * 4
    pieces = SentencePieceTokenizer.train(texts, 40)
    chars = CharTokenizer.from_texts(texts)
    cfg = _aux_cfg()
    module = CTCModule(Recognizer(ModelSpec(cfg.features, cfg.model, pieces.to_dict())), cfg, chars)
    assert module.aux_output.out_features == chars.vocab_size != pieces.vocab_size
    waves = torch.randn(2, 32000) * 0.1
    ids = [torch.tensor(pieces.encode(t)) for t in texts[:2]]
    batch = Batch(
        waves,
        torch.tensor([32000, 32000]),
        zero_pad(ids),
        torch.tensor([len(i) for i in ids]),
        ["a", "b"],
        texts[:2],
    )
    targets, lens = module._aux_targets(batch)
    assert [chars.decode(t[:n].tolist()) for t, n in zip(targets, lens)] == texts[:2]
    before = module.aux_output.weight.detach().clone()
    _trainer(tmp_path).fit(module, DataLoader([batch], batch_size=None))
    assert not torch.equal(before, module.aux_output.weight)  # trained with the model
    assert module.skipped_steps == 0


def test_confidence_penalty_subtracts_the_mean_entropy_of_the_unpadded_frames():
    """``optim.confidence_penalty`` w: the loss is the plain loss less w times the top CTC's output entropy,
    averaged over the frames each utterance has (the shorter one's padding left out), and its gradient flows
    through that entropy."""
    tok = CharTokenizer.english()
    cfg = Config(model=ModelConfig(hidden_size=16, num_layers=2, conv_channels=4, dropout=0.0))
    cfg.specaug.freq_masks = cfg.specaug.time_masks = 0
    plain = _module(cfg, tok)
    module = CTCModule(plain.recognizer, dataclasses.replace(cfg, optim=OptimConfig(confidence_penalty=0.5)))
    batch = _batch(tok, False)
    batch.wave_lens[1] = 9000
    feats, feat_lens = module.recognizer.frontend(batch.waves, batch.wave_lens)
    log_probs, out_lens = module.recognizer.encoder(feats, feat_lens)
    assert out_lens[1] < out_lens[0] == log_probs.shape[1]
    entropy = torch.cat([-(lp.exp() * lp).sum(-1) for lp in (log_probs[b, : out_lens[b]] for b in range(2))])
    penalty = (module.train_loss(batch) - plain.train_loss(batch)) / -0.5
    torch.testing.assert_close(penalty, entropy.mean())
    penalty.backward()
    grad = module.recognizer.encoder.output.weight.grad.clone()
    module.zero_grad()
    entropy.mean().backward()
    torch.testing.assert_close(grad, module.recognizer.encoder.output.weight.grad)
