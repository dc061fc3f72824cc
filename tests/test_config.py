import pytest

from asr.config import ConfigError, from_dict, load_config, save_config, to_dict


def test_defaults_yaml_and_overrides(tmp_path):
    (tmp_path / "c.yaml").write_text("model:\n  hidden_size: 64\n  rnn_type: gru\n")
    cfg = load_config(
        tmp_path / "c.yaml", ["model.num_layers=2", "optim.lr=0.01", "trainer.precision=bf16-mixed"]
    )
    assert (cfg.model.hidden_size, cfg.model.rnn_type, cfg.model.num_layers) == (64, "gru", 2)
    assert cfg.optim.lr == 0.01 and cfg.trainer.precision == "bf16-mixed"
    assert cfg.features.n_mels == 80


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.hidden=3"], "hidden"),
        (["model.hidden_size=big"], "hidden_size"),
        (["model.rnn_type=transformer"], "rnn_type"),
        (["model.subsampling=3"], "subsampling"),
        (["nokeyvalue"], "key=value"),
    ],
)
def test_bad_values_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)


def test_missing_file():
    with pytest.raises(ConfigError, match="not found"):
        load_config("/nonexistent.yaml")


def test_dict_round_trip_and_yaml(tmp_path):
    cfg = load_config(None, ["model.projection=128", "optim.betas=[0.8,0.9]"])
    d = to_dict(cfg)
    assert tuple(d["optim"]["betas"]) == (0.8, 0.9)
    assert from_dict(d) == cfg
    save_config(cfg, tmp_path / "run" / "config.yaml")
    assert load_config(tmp_path / "run" / "config.yaml") == cfg
