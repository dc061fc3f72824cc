"""Log-mel features, global mean/variance normalisation, SpecAugment, speed perturbation, vocal tract length
perturbation.

Features are computed in batches on the model's device. The STFT is not centred, so a frame only sees
samples of its own utterance: a padded batch yields exactly the frames of its items one at a time.
"""

from __future__ import annotations

import functools

import torch
import torchaudio
from torch import Tensor, nn

from asr.audio import SAMPLE_RATE
from asr.config import SpecAugmentConfig
from asr.spec import LOG_FLOOR, FeatureConfig, hop_samples, num_frames, window_samples

VTLP_HIGH_HZ = 4800.0  # where the warp's linear part ends for factors <= 1 (Jaitly and Hinton's F_hi)


def lengths_mask(lens: Tensor, max_len: int) -> Tensor:
    """(B, max_len) bool, True at valid positions."""
    return torch.arange(max_len, device=lens.device)[None, :] < lens[:, None]


class LogMel(nn.Module):
    """(B, S) waveforms and lengths -> (B, T, n_mels) log-mel frames and lengths.

    Its NumPy equivalent, for ONNX models without torch, is :mod:`asr.numpy_frontend` (given this module's
    window and mel filterbank at export); a change here is a change there.
    """

    def __init__(self, cfg: FeatureConfig) -> None:
        super().__init__()
        self.cfg = cfg
        win = window_samples(cfg)
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=SAMPLE_RATE,
            n_fft=win,
            win_length=win,
            hop_length=hop_samples(cfg),
            n_mels=cfg.n_mels,
            center=False,
            power=2.0,
        )
        # The STFT stays complex and its power is taken as re^2 + im^2 below: abs() would compute a square
        # root only for pow(2) to undo it, and took twice as long as the STFT itself on the CPU.
        self.mel.spectrogram.power = None

    def forward(self, waves: Tensor, wave_lens: Tensor, warp: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``warp``: (B,) each utterance's VTLP factor (:func:`vtlp_filterbanks`) in training; None: none."""
        with torch.autocast(waves.device.type, enabled=False):
            stft = self.mel.spectrogram(waves.float())  # (B, F, T) complex
            power = stft.real.square() + stft.imag.square()
            if warp is None:
                mel = self.mel.mel_scale(power)  # (B, n_mels, T)
            else:
                banks = vtlp_filterbanks(self.mel.mel_scale.fb, warp)
                mel = torch.einsum("bkm,bkt->bmt", banks, power)
        feats = torch.log(mel + LOG_FLOOR).transpose(1, 2)  # (B, T, n_mels)
        return feats, num_frames(wave_lens, self.cfg)


def vtlp_filterbanks(fb: Tensor, factors: Tensor, high_hz: float = VTLP_HIGH_HZ) -> Tensor:
    """Vocal tract length perturbation (Jaitly and Hinton 2013) as per-utterance mel filterbanks.

    The spectrum is warped piecewise linearly before the filterbank: frequency f moves to ``factor * f`` up
    to ``high_hz * min(factor, 1)``, and above it the rest of the band is mapped linearly onto what is left,
    so the Nyquist frequency stays put. The warped power at each bin is the original's interpolated
    linearly, and that interpolation is folded into the filterbank.
    fb: (F, n_mels) a 16 kHz filterbank over F = n_fft/2 + 1 bins; factors: (B,) -> (B, F, n_mels).
    """
    bins = fb.shape[0]
    nyquist = SAMPLE_RATE / 2
    freqs = torch.linspace(0.0, nyquist, bins, device=fb.device)  # (F,) the output bins
    factor = factors.to(fb)[:, None]  # (B, 1), on the filterbank's device and in its dtype
    knee_out = high_hz * factor.clamp(max=1.0)
    knee_in = knee_out / factor
    source = torch.where(  # (B, F) the frequency each output bin reads
        freqs <= knee_out,
        freqs / factor,
        nyquist - (nyquist - freqs) * (nyquist - knee_in) / (nyquist - knee_out),
    )
    pos = (source / nyquist * (bins - 1)).clamp(0, bins - 1)
    low = pos.floor().clamp(max=bins - 2)
    frac = pos - low
    low = low.long()
    interp = torch.zeros(factors.shape[0], bins, bins, device=fb.device)  # (B, out, in)
    interp.scatter_(2, low[..., None], (1 - frac)[..., None])
    interp.scatter_add_(2, low[..., None] + 1, frac[..., None])
    return interp.transpose(1, 2) @ fb


class GlobalCMVN(nn.Module):
    """Subtract the global mean and divide by the global std (buffers stored in the checkpoint)."""

    def __init__(self, n_mels: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_mels))
        self.register_buffer("std", torch.ones(n_mels))

    def set_stats(self, mean: Tensor, std: Tensor) -> None:
        self.mean.copy_(mean)
        self.std.copy_(std.clamp_min(1e-5))

    def forward(self, feats: Tensor, lens: Tensor) -> Tensor:
        """(B, T, F) -> (B, T, F); padded frames are set to 0."""
        out = (feats - self.mean) / self.std
        return out.masked_fill(~lengths_mask(lens, feats.shape[1])[:, :, None], 0.0)


class CMVNAccumulator:
    """Running sums of log-mel frames for global statistics."""

    def __init__(self, n_mels: int) -> None:
        self.sum = torch.zeros(n_mels, dtype=torch.float64)
        self.sq = torch.zeros(n_mels, dtype=torch.float64)
        self.frames = 0

    def add(self, feats: Tensor, lens: Tensor) -> None:
        """Add (B, T, F) frames, counting only valid ones."""
        valid = feats[lengths_mask(lens, feats.shape[1])].double()  # (N, F)
        self.sum += valid.sum(0).cpu()
        self.sq += (valid * valid).sum(0).cpu()
        self.frames += valid.shape[0]

    def stats(self) -> tuple[Tensor, Tensor]:
        """(mean, std) as float32."""
        if self.frames == 0:
            raise ValueError("no frames to compute normalisation statistics from")
        mean = self.sum / self.frames
        var = (self.sq / self.frames - mean * mean).clamp_min(1e-10)
        return mean.float(), var.sqrt().float()


class FeatureExtractor(nn.Module):
    """Waveforms -> normalised log-mel frames: the front end shared by training, evaluation and inference."""

    def __init__(self, cfg: FeatureConfig) -> None:
        super().__init__()
        self.logmel = LogMel(cfg)
        self.cmvn = GlobalCMVN(cfg.n_mels)

    def forward(self, waves: Tensor, wave_lens: Tensor, warp: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``warp``: (B,) VTLP factors for training (:meth:`LogMel.forward`); None at inference."""
        feats, lens = self.logmel(waves, wave_lens, warp)
        return self.cmvn(feats, lens), lens


@functools.cache
def _speed_resampler(rate: int, device: torch.device) -> torchaudio.transforms.Resample:
    """The polyphase resampler from ``rate`` to 16 kHz on ``device``, its kernel built once.

    ``torchaudio.functional.resample`` rebuilds the kernel on every call, and on a GPU that costs a
    host-device synchronisation per training step.
    """
    return torchaudio.transforms.Resample(rate, SAMPLE_RATE).to(device)


def change_speed(waves: Tensor, wave_lens: Tensor, factor: float) -> tuple[Tensor, Tensor]:
    """Play a padded 16 kHz batch ``factor`` times faster, pitch too (sox ``speed``): n -> n / factor samples.

    Speed perturbation for training, done on the batch's device in float32 (autocast off): a polyphase
    resampling by a small ratio, e.g. 9/10 for 0.9, is cheap there, while in a loader worker it cost about
    as much as reading the file.
    waves (B, S), wave_lens (B,) -> (B, S'), (B,).
    """
    if factor == 1.0:
        return waves, wave_lens
    rate = round(SAMPLE_RATE * factor)  # samples taken as recorded at this rate, then brought to 16 kHz
    with torch.autocast(waves.device.type, enabled=False):
        out = _speed_resampler(rate, waves.device)(waves.float())
    lens = (wave_lens * SAMPLE_RATE + rate - 1) // rate  # ceil(n * 16000 / rate), as resample's output
    return out, lens


def spec_augment(
    feats: Tensor, lens: Tensor, cfg: SpecAugmentConfig, generator: torch.Generator | None = None
) -> Tensor:
    """Frequency and time masks, drawn independently per utterance; time masks scale with its length.

    feats: (B, T, F) normalised (masked values are set to 0, the mean). Returns a new tensor.
    """
    b, t, f = feats.shape
    dev = feats.device
    keep = torch.ones(b, t, f, dtype=torch.bool, device=dev)
    freq = torch.arange(f, device=dev)
    for _ in range(cfg.freq_masks):
        width = torch.randint(0, cfg.freq_width + 1, (b, 1), device=dev, generator=generator)
        start = (torch.rand(b, 1, device=dev, generator=generator) * (f - width).clamp_min(1)).long()
        keep &= ~((freq >= start) & (freq < start + width))[:, None, :]
    time = torch.arange(t, device=dev)
    max_width = (lens.float() * cfg.time_width).clamp(max=cfg.time_max_frames).long()  # (B,)
    for _ in range(cfg.time_masks):
        width = (torch.rand(b, device=dev, generator=generator) * (max_width + 1)).long()[:, None]
        start = (
            torch.rand(b, 1, device=dev, generator=generator) * (lens[:, None] - width).clamp_min(1)
        ).long()
        keep &= ~((time >= start) & (time < start + width))[:, :, None]
    return feats * keep
