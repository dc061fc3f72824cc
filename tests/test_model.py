import pytest
import torch

from asr.model import Encoder, count_parameters, reverse_padded, stack_pairs
from asr.spec import SUBSAMPLING_CONVS, ModelConfig, conv_output_length


def test_conv_output_length():
    assert conv_output_length(100, 2) == 24
    assert conv_output_length(torch.tensor([7, 6, 100]), 2).tolist() == [1, 0, 24]
    assert conv_output_length(100, 3) == 11


def test_reverse_padded():
    x = torch.arange(8.0).reshape(2, 4, 1)
    out = reverse_padded(x, torch.tensor([4, 2]))
    assert out[:, :, 0].tolist() == [[3, 2, 1, 0], [5, 4, 6, 7]]


def test_stack_pairs_concatenates_frame_pairs_and_drops_an_odd_last_frame():
    x = torch.arange(10.0).reshape(1, 5, 2)
    out, lens = stack_pairs(x, torch.tensor([5]))
    assert out.tolist() == [[[0, 1, 2, 3], [4, 5, 6, 7]]] and lens.tolist() == [2]


@pytest.mark.parametrize("rnn_type", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize(
    "projection, layer_norm, reduce_after, condition_layer",
    [(0, False, 0, 0), (24, False, 0, 1), (0, True, 0, 0), (24, True, 1, 1)],
)
def test_padded_batch_equals_items_one_at_a_time(
    rnn_type, projection, layer_norm, reduce_after, condition_layer
):
    torch.manual_seed(0)
    cfg = ModelConfig(
        rnn_type=rnn_type,
        hidden_size=16,
        num_layers=2,
        conv_channels=4,
        projection=projection,
        layer_norm=layer_norm,
        reduce_after=reduce_after,
        condition_layer=condition_layer,
    )
    enc = Encoder(cfg, n_mels=20, vocab_size=7).eval()
    lens = torch.tensor([50, 33, 20])
    feats = torch.randn(3, 50, 20)
    for i, n in enumerate(lens):
        feats[i, n:] = 1e3  # garbage in the padding must not leak into valid outputs
    log_probs, out_lens = enc(feats, lens)
    expected = [5, 3, 2] if reduce_after else [11, 7, 4]  # pyramidal: pairs of the 4x frames
    assert log_probs.shape == (3, expected[0], 7) and log_probs.dtype == torch.float32
    assert out_lens.tolist() == expected == enc.output_length(lens).tolist()
    for i, n in enumerate(lens):
        single, single_len = enc(feats[i : i + 1, :n], lens[i : i + 1])
        assert single_len.item() == out_lens[i]
        torch.testing.assert_close(log_probs[i, : out_lens[i]], single[0], atol=1e-5, rtol=1e-4)


def test_unidirectional_and_parameter_count():
    cfg = ModelConfig(hidden_size=8, num_layers=1, conv_channels=2, bidirectional=False, subsampling=8)
    enc = Encoder(cfg, n_mels=16, vocab_size=5)
    log_probs, lens = enc(torch.randn(1, 40, 16), torch.tensor([40]))
    assert lens.item() == 4 and log_probs.shape == (1, 4, 5)
    assert torch.allclose(log_probs.exp().sum(-1), torch.ones(1, 4))
    assert count_parameters(enc) == sum(p.numel() for p in enc.parameters())


def test_layer_norm_before_each_layer_only_when_asked():
    plain = Encoder(ModelConfig(hidden_size=8, num_layers=2, conv_channels=2), 16, 5)
    normed = Encoder(ModelConfig(hidden_size=8, num_layers=2, conv_channels=2, layer_norm=True), 16, 5)
    assert not any("norms" in k for k in plain.state_dict())  # model files from before it load unchanged
    assert sorted(k for k in normed.state_dict() if "norms" in k) == [
        f"norms.{i}.{p}" for i in range(2) for p in ("bias", "weight")
    ]
    assert count_parameters(normed) - count_parameters(plain) == 2 * 2 * 16  # gain and bias, width 2 x 8


def test_self_conditioning_adds_the_layers_mapped_posteriors_to_what_the_next_layer_reads():
    """Self-conditioned CTC: layer 3 reads layer 2's output plus a linear map of layer 2's own CTC
    posteriors; layer_outputs gives those log-probabilities and layer 2's output before the sum."""
    torch.manual_seed(0)
    cfg = ModelConfig(hidden_size=8, num_layers=3, conv_channels=2, condition_layer=2, dropout=0.0)
    enc = Encoder(cfg, 16, 5).eval()
    feats, lens = torch.randn(2, 40, 16), torch.tensor([40, 29])
    outputs, out_lens, inter = enc.layer_outputs(feats, lens)
    torch.testing.assert_close(inter, torch.log_softmax(enc.inter_output(outputs[1]), dim=-1))
    conditioned = outputs[1] + enc.condition(inter.exp())
    torch.testing.assert_close(outputs[2], enc.rnns[2](conditioned, out_lens[1]))
    assert not torch.allclose(outputs[2], enc.rnns[2](outputs[1], out_lens[1]))
    plain = Encoder(ModelConfig(hidden_size=8, num_layers=3, conv_channels=2), 16, 5)
    assert plain.layer_outputs(feats, lens)[2] is None
    assert count_parameters(enc) - count_parameters(plain) == (16 * 5 + 5) + (5 * 16 + 16)


def test_lstm_forget_gates_start_open_and_other_gates_keep_torch_init():
    torch.manual_seed(0)
    enc = Encoder(ModelConfig(rnn_type="lstm", hidden_size=8, num_layers=2, conv_channels=4), 80, 29)
    lstms = [m for m in enc.modules() if isinstance(m, torch.nn.LSTM)]
    assert len(lstms) == 4  # two layers, two directions
    for lstm in lstms:
        total = lstm.bias_ih_l0 + lstm.bias_hh_l0  # gate order i, f, g, o
        assert torch.equal(total[8:16], torch.ones(8))
        others = torch.cat([total[:8], total[16:]])
        assert others.abs().max() < 2 / 8**0.5 and others.std() > 0.1  # torch's U(-1/sqrt(H), 1/sqrt(H))
    gru = Encoder(ModelConfig(rnn_type="gru", hidden_size=8, num_layers=1, conv_channels=4), 80, 29)
    for m in gru.modules():
        if isinstance(m, torch.nn.GRU):
            assert (m.bias_ih_l0 + m.bias_hh_l0).abs().max() < 2 / 8**0.5


@pytest.mark.parametrize("factor, frames", [(2, 49), (4, 24), (8, 11)])
def test_each_subsampling_factor(factor, frames):
    cfg = ModelConfig(hidden_size=8, num_layers=1, conv_channels=2, subsampling=factor)
    enc = Encoder(cfg, n_mels=20, vocab_size=5).eval()
    feats = torch.randn(2, 100, 20)
    feats[1, 60:] = 1e3  # padding
    log_probs, lens = enc(feats, torch.tensor([100, 60]))
    assert log_probs.shape == (2, frames, 5)
    assert lens.tolist() == [frames, conv_output_length(60, SUBSAMPLING_CONVS[factor])]
    single, _ = enc(feats[1:, :60], torch.tensor([60]))
    torch.testing.assert_close(log_probs[1, : lens[1]], single[0], atol=1e-5, rtol=1e-4)
