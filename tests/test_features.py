import math

import pytest
import torch
import torchaudio

from asr.config import SpecAugmentConfig
from asr.features import (
    CMVNAccumulator,
    FeatureExtractor,
    LogMel,
    change_speed,
    num_frames,
    spec_augment,
    vtlp_filterbanks,
)
from asr.spec import FeatureConfig

CFG = FeatureConfig()


def test_frame_counts():
    assert num_frames(399, CFG) == 0
    assert num_frames(400, CFG) == 1
    assert num_frames(16000, CFG) == 98
    assert num_frames(torch.tensor([0, 400, 559, 560]), CFG).tolist() == [0, 1, 1, 2]


def test_logmel_shape_and_exact_lengths():
    waves = torch.randn(2, 16000) * 0.1
    feats, lens = LogMel(CFG)(waves, torch.tensor([16000, 8000]))
    assert feats.shape == (2, 98, 80) and lens.tolist() == [98, 48]


def test_logmel_is_torchaudios_power_mel_spectrogram_with_the_same_checkpoint_keys():
    waves = torch.randn(3, 16000, generator=torch.Generator().manual_seed(0)) * 0.1
    reference = torchaudio.transforms.MelSpectrogram(16000, 400, 400, 160, n_mels=80, center=False, power=2.0)
    logmel = LogMel(CFG)
    feats, _ = logmel(waves, torch.tensor([16000, 16000, 16000]))
    torch.testing.assert_close(
        feats, torch.log(reference(waves) + 1e-6).transpose(1, 2), atol=1e-5, rtol=1e-5
    )
    assert logmel.state_dict().keys() == {f"mel.{k}" for k in reference.state_dict()}  # old checkpoints load


def test_padded_batch_equals_items_one_at_a_time():
    torch.manual_seed(0)
    a, b = torch.randn(12000) * 0.1, torch.randn(7000) * 0.1
    ext = FeatureExtractor(CFG)
    ext.cmvn.set_stats(torch.full((80,), -5.0), torch.full((80,), 2.0))
    batch = torch.zeros(2, 12000)
    batch[0], batch[1, :7000] = a, b
    feats, lens = ext(batch, torch.tensor([12000, 7000]))
    fa, _ = ext(a[None], torch.tensor([12000]))
    fb, lb = ext(b[None], torch.tensor([7000]))
    torch.testing.assert_close(feats[0], fa[0])
    torch.testing.assert_close(feats[1, : lb[0]], fb[0])
    assert torch.all(feats[1, lb[0] :] == 0)


def _tone(hz: float, seconds: float = 0.5) -> torch.Tensor:
    return 0.1 * torch.sin(2 * math.pi * hz * torch.arange(int(16000 * seconds)) / 16000)


def test_vtlp_with_factor_one_is_the_plain_filterbank():
    logmel = LogMel(CFG)
    fb = logmel.mel.mel_scale.fb
    torch.testing.assert_close(vtlp_filterbanks(fb, torch.ones(2)), fb.expand(2, -1, -1))
    waves = torch.randn(2, 8000, generator=torch.Generator().manual_seed(0)) * 0.1
    lens = torch.tensor([8000, 8000])
    torch.testing.assert_close(logmel(waves, lens, torch.ones(2))[0], logmel(waves, lens)[0])


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_vtlp_moves_a_tone_below_the_knee_to_factor_times_its_frequency(factor):
    logmel = LogMel(CFG)
    one = torch.tensor([16000 // 2])

    def peak(hz: float, warp: torch.Tensor | None = None) -> int:
        return int(logmel(_tone(hz)[None], one, warp)[0][0].mean(0).argmax())

    warped = peak(1000.0, torch.tensor([factor]))
    assert warped == peak(1000.0 * factor) and warped != peak(1000.0)


def test_vtlp_warps_each_utterance_of_a_padded_batch_by_its_own_factor():
    ext = FeatureExtractor(CFG)
    a, b = _tone(700.0, 0.75), _tone(2500.0, 0.4)
    batch = torch.zeros(2, len(a))
    batch[0], batch[1, : len(b)] = a, b
    factors = torch.tensor([0.92, 1.07])
    feats, lens = ext(batch, torch.tensor([len(a), len(b)]), factors)
    fa, _ = ext(a[None], torch.tensor([len(a)]), factors[:1])
    fb, _ = ext(b[None], torch.tensor([len(b)]), factors[1:])
    torch.testing.assert_close(feats[0], fa[0])
    torch.testing.assert_close(feats[1, : lens[1]], fb[0])


def test_cmvn_statistics_ignore_padding():
    acc = CMVNAccumulator(2)
    feats = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]]])
    acc.add(feats, torch.tensor([2]))
    mean, std = acc.stats()
    torch.testing.assert_close(mean, torch.tensor([2.0, 3.0]))
    torch.testing.assert_close(std, torch.tensor([1.0, 1.0]))


def test_specaugment_masks_within_bounds():
    cfg = SpecAugmentConfig(freq_masks=2, freq_width=10, time_masks=2, time_width=0.1, time_max_frames=5)
    feats = torch.ones(4, 200, 80)
    lens = torch.tensor([200, 150, 100, 50])
    out = spec_augment(feats, lens, cfg, torch.Generator().manual_seed(0))
    assert out.shape == feats.shape
    zero_bins = (out == 0).all(dim=1).sum(dim=1)  # fully masked frequency bins per utterance
    assert (zero_bins <= 2 * 10).all()
    zero_frames = (out == 0).all(dim=2).sum(dim=1)  # fully masked frames per utterance
    assert (zero_frames <= 2 * 5).all()
    assert (out == 0).any()
    assert torch.equal(spec_augment(feats, lens, SpecAugmentConfig(0, 0, 0, 0.0, 0)), feats)


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_change_speed_length_pitch_and_padding(factor):
    t = torch.arange(16000) / 16000
    tone = 0.5 * torch.sin(2 * torch.pi * 200 * t)
    waves = torch.zeros(2, 16000)
    waves[0], waves[1, :8000] = tone, tone[:8000]
    out, lens = change_speed(waves, torch.tensor([16000, 8000]), factor)
    assert lens.tolist() == [math.ceil(16000 / factor), math.ceil(8000 / factor)]
    assert out.shape[1] >= lens[0]
    spectrum = torch.fft.rfft(out[0, : lens[0]]).abs()
    assert abs(int(spectrum.argmax()) * 16000 / int(lens[0]) - 200 * factor) < 2  # pitch moves with speed
    alone, alone_lens = change_speed(waves[1:, :8000], torch.tensor([8000]), factor)
    assert alone_lens.item() == lens[1]
    torch.testing.assert_close(out[1, : lens[1]], alone[0, : lens[1]], atol=1e-5, rtol=0)  # padding unseen
    same, same_lens = change_speed(waves, torch.tensor([16000, 8000]), 1.0)
    assert same is waves and same_lens.tolist() == [16000, 8000]


@pytest.mark.parametrize("factor", [0.9, 1.1])
def test_change_speed_is_torchaudios_resampling_in_float32_under_autocast(factor):
    waves = torch.randn(3, 12000, generator=torch.Generator().manual_seed(0))
    rate = round(16000 * factor)
    expected = torchaudio.functional.resample(waves, rate, 16000)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, _ = change_speed(waves, torch.tensor([12000, 9000, 5000]), factor)
        again, _ = change_speed(waves, torch.tensor([12000, 9000, 5000]), factor)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)  # bf16 would be off by ~1e-2
    assert torch.equal(again, out)
