import subprocess
import sys

import pytest
from reliability import record

from asr.cli import main
from asr.config import ConfigError, from_dict, load_config, save_config, to_dict
from asr.errors import EXIT_CONFIG, run_main


def test_defaults_yaml_and_overrides(tmp_path):
    (tmp_path / "c.yaml").write_text("model:\n  hidden_size: 64\n  rnn_type: gru\n")
    cfg = load_config(
        tmp_path / "c.yaml", ["model.num_layers=2", "optim.lr=0.01", "trainer.precision=bf16-mixed"]
    )
    assert (cfg.model.hidden_size, cfg.model.rnn_type, cfg.model.num_layers) == (64, "gru", 2)
    assert cfg.optim.lr == 0.01 and cfg.trainer.precision == "bf16-mixed"
    assert cfg.features.n_mels == 80


@pytest.mark.parametrize(
    "overrides",
    [
        ["trainer.devices=2"],
        ["trainer.devices=-1"],
        ["trainer.devices='0,1'"],
        ["trainer.max_epochs=-1", "trainer.max_steps=100"],
        ["trainer.max_time=00:01:30:00"],
        ["optim.final_lr_ratio=0", "optim.final_lr_ratio=1", "optim.warmup_steps=0"],
        ["data.min_duration=0", "data.max_duration=.inf", "specaug.freq_masks=0"],
        ["trainer.precision=16-mixed", "trainer.accelerator=cpu"],
        ["data.tokenizer=sentencepiece", "model.num_layers=4", "model.reduce_after=2", "aux_ctc.layer=2"],
        ["model.num_layers=4", "model.reduce_after=2", "aux_ctc.layer=3"],  # characters on both: same units
        ["model.num_layers=4", "model.condition_layer=2", "aux_ctc.layer=2"],
    ],
)
def test_valid_edge_values_accepted(overrides):
    load_config(None, overrides)


# (overrides, the key the one-line error must name)
INVALID = [
    (["optim.lr=-1"], "optim.lr"),
    (["optim.lr=0"], "optim.lr"),
    (["optim.lr=.nan"], "optim.lr"),
    (["optim.weight_decay=-0.1"], "optim.weight_decay"),
    (["optim.betas=[0.9,1.0]"], "optim.betas"),
    (["optim.betas=[-0.1,0.9]"], "optim.betas"),
    (["optim.betas=[0.9]"], "optim.betas"),
    (["optim.warmup_steps=-1"], "optim.warmup_steps"),
    (["optim.final_lr_ratio=1.5"], "optim.final_lr_ratio"),
    (["optim.final_lr_ratio=-0.1"], "optim.final_lr_ratio"),
    (["optim.hold_fraction=1"], "optim.hold_fraction"),
    (["optim.hold_fraction=-0.1"], "optim.hold_fraction"),
    (["optim.grad_clip=0"], "optim.grad_clip"),
    (["optim.weight_noise=-0.01"], "optim.weight_noise"),
    (["optim.weight_noise=.inf"], "optim.weight_noise"),
    (["optim.weight_noise_start=-1"], "optim.weight_noise_start"),
    (["optim.confidence_penalty=-0.1"], "optim.confidence_penalty"),
    (["trainer.precision=bogus"], "trainer.precision"),
    (["trainer.accelerator=quantum"], "trainer.accelerator"),
    (["trainer.devices=0"], "trainer.devices"),
    (["trainer.devices=two"], "trainer.devices"),
    (["trainer.devices='0,0'"], "trainer.devices"),
    (["trainer.num_nodes=0"], "trainer.num_nodes"),
    (["trainer.max_epochs=0"], "trainer.max_epochs"),
    (["trainer.max_steps=0"], "trainer.max_steps"),
    (["trainer.max_epochs=-1"], "trainer.max_steps=-1"),
    (["trainer.max_time=soon"], "trainer.max_time"),
    (["trainer.accumulate_grad_batches=0"], "trainer.accumulate_grad_batches"),
    (["trainer.checkpoint_every_n_steps=-1"], "trainer.checkpoint_every_n_steps"),
    (["trainer.keep_last=-1"], "trainer.keep_last"),
    (["trainer.keep_best=0"], "trainer.keep_best"),
    (["trainer.val_every_n_epochs=0"], "trainer.val_every_n_epochs"),
    (["trainer.log_every_n_steps=0"], "trainer.log_every_n_steps"),
    (["trainer.threads=-2"], "trainer.threads"),
    (["data.max_batch_seconds=0"], "data.max_batch_seconds"),
    (["data.max_batch_seconds=-5"], "data.max_batch_seconds"),
    (["data.min_duration=-1"], "data.min_duration"),
    (["data.max_duration=0"], "data.max_duration"),
    (["data.min_duration=5", "data.max_duration=2"], "data.min_duration"),
    (["data.num_workers=-1"], "data.num_workers"),
    (["data.speed_perturb=[0.9,3.0]"], "data.speed_perturb"),
    (["data.speed_perturb=[0]"], "data.speed_perturb"),
    (["data.vocabulary=klingon"], "data.vocabulary"),
    (["specaug.freq_masks=-1"], "specaug.freq_masks"),
    (["specaug.freq_width=-3"], "specaug.freq_width"),
    (["specaug.time_masks=-1"], "specaug.time_masks"),
    (["specaug.time_width=1.5"], "specaug.time_width"),
    (["specaug.time_max_frames=-1"], "specaug.time_max_frames"),
    (["specaug.start_step=-1"], "specaug.start_step"),
    (["specaug.vtlp=0.7"], "specaug.vtlp"),
    (["seed=-1"], "seed"),
    (["exp_dir=''"], "exp_dir"),
    (["model.hidden_size=0"], "model.hidden_size"),
    (["model.hidden_size=big"], "hidden_size"),
    (["model.hidden=3"], "hidden"),
    (["model.num_layers=0"], "model.num_layers"),
    (["model.conv_channels=0"], "model.conv_channels"),
    (["model.projection=-1"], "model.projection"),
    (["model.dropout=1.5"], "model.dropout"),
    (["model.rnn_type=transformer"], "rnn_type"),
    (["model.subsampling=3"], "subsampling"),
    (["aux_ctc.layer=-1"], "aux_ctc.layer"),
    (["model.num_layers=3", "aux_ctc.layer=3"], "aux_ctc.layer"),
    (
        ["data.tokenizer=sentencepiece", "model.num_layers=4", "model.reduce_after=2", "aux_ctc.layer=3"],
        "aux_ctc.layer=3 is above model.reduce_after=2",
    ),
    (["model.condition_layer=1"], "model.condition_layer=1 needs aux_ctc.layer=1"),
    (
        ["data.tokenizer=sentencepiece", "model.condition_layer=1", "aux_ctc.layer=1"],
        "and data.tokenizer=char",
    ),
    (["aux_ctc.weight=0"], "aux_ctc.weight"),
    (["aux_ctc.weight=1"], "aux_ctc.weight"),
    (["features.hop_ms=0"], "features.hop_ms"),
    (["features.win_ms=0"], "features.win_ms"),
    (["features.n_mels=0"], "features.n_mels"),
    (["data.cmvn_max_utts=0"], "data.cmvn_max_utts"),
    (["model.hidden_size=["], "model.hidden_size=["),
    (["model=3"], "model"),
    (["nokeyvalue"], "key=value"),
]


@pytest.mark.parametrize(("overrides", "key"), INVALID, ids=[" ".join(o) for o, _ in INVALID])
def test_invalid_setting_is_one_line_exit_3(overrides, key, capsys):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.").replace("[", r"\[")):
        load_config(None, overrides)
    capsys.readouterr()
    code = run_main(lambda: main(["train", *overrides]))
    err = capsys.readouterr().err
    record("settings: invalid values, asr train", f"error line, exit {code}")
    assert code == EXIT_CONFIG
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: ") and key in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model:\n  hidden_size: [1\n", r"c\.yaml:3: invalid YAML"),
        ("model:\n\thidden_size: 3\n", r"c\.yaml:2: invalid YAML"),
        ("- a\n- b\n", "not a mapping of settings"),
        ("model: 3\nfeatures: {}\n", "c.yaml: model: "),
        ("optim:\n  lr: -1\n", r"optim\.lr"),
        ("trainer:\n  bogus: 1\n", "bogus"),
    ],
)
def test_bad_yaml_file_is_config_error(tmp_path, text, message):
    (tmp_path / "c.yaml").write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path / "c.yaml")
    record("settings: bad YAML files", "ConfigError")


def test_undecodable_yaml_is_config_error(tmp_path):
    (tmp_path / "c.yaml").write_bytes(b"\xff\xfe\x00model")
    with pytest.raises(ConfigError, match="not valid UTF-8"):
        load_config(tmp_path / "c.yaml")


def test_yaml_syntax_error_through_the_command_line(tmp_path):
    (tmp_path / "c.yaml").write_text("optim:\n  lr: [0.1\n")
    out = subprocess.run(
        [sys.executable, "-m", "asr.cli", "train", "--config", str(tmp_path / "c.yaml")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == EXIT_CONFIG, out.stderr
    assert out.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'c.yaml'}:3: invalid YAML " + "(did not find expected ',' or ']')"
    ]
    assert not (tmp_path / "exp").exists()


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


def test_auto_precision_is_concrete_and_follows_the_hardware(monkeypatch):
    import torch

    from asr.train import resolve_precision

    assert resolve_precision("32-true", "cpu") == "32-true"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    assert resolve_precision("auto", "auto") == "32-true"  # bf16 without AMX is emulated: fp32 is faster
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16-mixed"
    assert load_config(None, ["trainer.precision=auto"]).trainer.precision == "auto"


def test_the_best_checkpoint_is_chosen_by_dev_cer_unless_told_otherwise(tmp_path):
    """Best-by-WER keeps a near-blank model (WER 100%) over a better one whose fragments push WER past 100%;
    by CER the blank model scores 100% and any model that spells some of the text beats it."""
    from asr.train import build_trainer

    for override, monitor in ((None, "val/cer"), ("trainer.select_by=wer", "val/wer")):
        cfg = load_config(None, [f"exp_dir={tmp_path}", *([override] if override else [])])
        assert build_trainer(cfg).checkpoint_callback.monitor == monitor
    with pytest.raises(ConfigError, match="trainer.select_by"):
        load_config(None, ["trainer.select_by=accuracy"])
