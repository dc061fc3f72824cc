import dataclasses

import pytest

from asr.errors import ConfigError
from asr.spec import (
    FORMAT_VERSION,
    FeatureConfig,
    ModelConfig,
    ModelSpec,
    check_features,
    check_model,
    conv_output_length,
    min_conv_input,
)
from asr.text import CharTokenizer, TokenizerError, tokenizer_from_dict

TOKENIZER = CharTokenizer.english().to_dict()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"n_mels": 0}, "features.n_mels must be a positive integer"),
        ({"n_mels": 2.5}, "features.n_mels must be a positive integer"),
        ({"hop_ms": 0.0}, "features.hop_ms must be a positive number"),
        ({"hop_ms": -10.0}, "features.hop_ms must be a positive number"),
        ({"hop_ms": float("nan")}, "features.hop_ms must be a positive number"),
        ({"hop_ms": 0.02}, "less than one sample"),
        ({"win_ms": 5.0}, "features.win_ms=5.0 must be at least features.hop_ms=10.0"),
        ({"win_ms": 2000.0}, "longer than one second"),
    ],
)
def test_bad_feature_settings(change, message):
    with pytest.raises(ConfigError, match=message):
        check_features(dataclasses.replace(FeatureConfig(), **change))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"rnn_type": "transformer"}, "model.rnn_type must be lstm, gru, rnn"),
        ({"subsampling": 3}, "model.subsampling must be 2, 4 or 8"),
        ({"conv_channels": 0}, "model.conv_channels must be a positive integer"),
        ({"hidden_size": -1}, "model.hidden_size must be a positive integer"),
        ({"num_layers": 0}, "model.num_layers must be a positive integer"),
        ({"projection": -1}, "model.projection must be 0"),
        ({"dropout": 1.0}, r"model.dropout must lie in \[0, 1\)"),
        ({"dropout": -0.1}, r"model.dropout must lie in \[0, 1\)"),
        ({"bidirectional": 1}, "model.bidirectional must be true or false"),
        ({"layer_norm": "yes"}, "model.layer_norm must be true or false"),
        (
            {"reduce_after": 3},
            r"model.reduce_after must be 0 \(never\) or a layer below the top one of model.num_layers=3",
        ),
        ({"reduce_after": -1}, "model.reduce_after must be 0"),
        ({"reduce_after": True}, "model.reduce_after must be 0"),
        ({"condition_layer": 3}, r"model.condition_layer must be 0 \(never\) or a layer below the top one"),
        ({"condition_layer": -1}, "model.condition_layer must be 0"),
    ],
)
def test_bad_model_settings(change, message):
    with pytest.raises(ConfigError, match=message):
        check_model(dataclasses.replace(ModelConfig(), **change), 80)


def test_subsampling_needs_enough_mel_bins():
    assert min_conv_input(2) == 7 and min_conv_input(3) == 15
    assert conv_output_length(7, 2) == 1 and conv_output_length(6, 2) == 0 and conv_output_length(15, 3) == 1
    check_model(ModelConfig(subsampling=8), 15)
    with pytest.raises(ConfigError, match="model.subsampling=8 needs at least 15 mel bins, got 14"):
        check_model(ModelConfig(subsampling=8), 14)
    with pytest.raises(ConfigError, match="train.model.num_layers"):  # the section's name is the caller's
        check_model(ModelConfig(num_layers=0), 80, section="train.model")


def test_defaults_are_valid_and_the_spec_round_trips():
    spec = ModelSpec(FeatureConfig(), ModelConfig(), TOKENIZER, {"mean": [0.5] * 80, "std": [2.0] * 80})
    d = spec.to_dict()
    assert d["version"] == FORMAT_VERSION and d["sample_rate"] == 16000 and d["tokenizer"]["kind"] == "char"
    assert ModelSpec.from_dict(d) == spec
    assert "cmvn_max_utts" not in d["features"]  # training-only: not part of what a model is


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"version": 2}, "this asr reads version 1"),
        ({"sample_rate": 8000}, "this asr runs at 16000 Hz"),
        ({"extra": 1}, "unknown key"),
        ({"features": {"n_mels": 80}}, "spec features: missing win_ms, hop_ms"),
        ({"model": None}, "spec model: expected a mapping"),
        ({"tokenizer": {"symbols": []}}, "tokenizer: expected a mapping with a 'kind'"),
        ({"cmvn": {"mean": [0.0] * 80, "std": [0.0] * 80}}, "cmvn.std: values must be positive"),
        ({"cmvn": {"mean": [float("inf")] * 80, "std": [1.0] * 80}}, "cmvn.mean: values must be finite"),
    ],
)
def test_bad_specs(change, message):
    d = ModelSpec(FeatureConfig(), ModelConfig(), TOKENIZER).to_dict() | change
    with pytest.raises(ConfigError, match=message):
        ModelSpec.from_dict(d)


@pytest.mark.parametrize(("key", "value", "default"), [("layer_norm", True, False), ("reduce_after", 2, 0)])
def test_model_files_from_before_a_later_setting_load_with_its_default(key, value, default):
    d = ModelSpec(FeatureConfig(), ModelConfig(**{key: value}), TOKENIZER).to_dict()
    assert getattr(ModelSpec.from_dict(d).model, key) == value
    del d["model"][key]
    assert getattr(ModelSpec.from_dict(d).model, key) == default
    d["model"][key] = "1"
    with pytest.raises(ConfigError, match=f"spec model.{key}: expected"):
        ModelSpec.from_dict(d)


def test_settings_added_later_are_written_only_when_used():
    """A model without them stays readable by releases from before them."""
    assert set(ModelSpec(FeatureConfig(), ModelConfig(), TOKENIZER).to_dict()["model"]) == {
        "rnn_type", "subsampling", "conv_channels", "hidden_size", "num_layers", "bidirectional",
        "projection", "dropout",
    }  # fmt: skip
    used = ModelSpec(FeatureConfig(), ModelConfig(layer_norm=True, reduce_after=1), TOKENIZER).to_dict()
    assert used["model"]["layer_norm"] is True and used["model"]["reduce_after"] == 1


def test_a_pyramidal_reduction_doubles_the_output_frames_duration_and_the_shortest_input():
    plain = ModelSpec(FeatureConfig(), ModelConfig(), TOKENIZER)
    reduced = ModelSpec(FeatureConfig(), ModelConfig(reduce_after=1), TOKENIZER)
    assert (plain.frame_seconds, reduced.frame_seconds) == (0.04, 0.08)
    assert (plain.model.min_frames, reduced.model.min_frames) == (7, 11)  # 1 and 2 frames after two convs
    assert conv_output_length(10, 2) == 1 and conv_output_length(11, 2) == 2
    assert reduced.min_samples == plain.min_samples + 4 * 160


def test_tokenizers_are_rebuilt_by_kind():
    tok = tokenizer_from_dict(TOKENIZER)
    assert isinstance(tok, CharTokenizer) and tok.symbols == CharTokenizer.english().symbols
    assert tok.separator_id == 1 and tok.spell("it's") == tok.encode("it's")
    with pytest.raises(TokenizerError, match="unknown tokenizer kind 'bpe'"):
        tokenizer_from_dict({"kind": "bpe"})
    with pytest.raises(TokenizerError, match="'Cat': character 'C' outside the vocabulary"):
        tok.spell("Cat")  # a lexicon's spelling is taken as it is
    with pytest.raises(TokenizerError, match="not one word"):
        tok.spell("new york")
