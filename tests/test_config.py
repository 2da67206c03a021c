"""One bad preset per way a config can be wrong: each is rejected with one line naming the file and key."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import load_config, parse_override, read_toml
from engine.errors import ConfigError
from engine.presets import load_preset, preset_names

GOOD = """
[benchmark]
name = "split_mnist"
data = "embedded"
[method]
name = "finetune"
[training]
lr = 0.01
"""


def load_text(tmp_path: Path, text: str, overrides: list[str] | None = None):
    p = tmp_path / "bad.toml"
    p.write_text(text)
    return load_config(read_toml(p), str(p), overrides)


def test_good_preset_and_defaults(tmp_path: Path) -> None:
    cfg = load_text(tmp_path, GOOD)
    assert cfg.training.lr == 0.01 and cfg.training.batch_size == 128
    assert cfg.benchmark.options.data == "embedded" and cfg.model.name == "mlp"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[benchmark\nname='x'", "invalid TOML"),
        ("colour = 1", "unknown key 'colour'"),
        ("[training]\nlearning_rate = 0.1", "unknown key 'training.learning_rate'"),
        ("[training]\nlrr = 0.1", "Closest valid keys: training.lr"),
        ("[training]\nlr = 'fast'", "training.lr = 'fast' should be float"),
        ("[training]\nsteps_per_task = 1.5", "training.steps_per_task = 1.5 should be int"),
        ("[training]\nreset_optimizer = 1", "should be bool"),
        ("[training]\nsteps_per_task = true", "should be int"),
        ("[method]\nname = 'ewk'", "unknown method 'ewk'"),
        ("[benchmark]\nname = 'split_mnist'\nscenario = 'tasks'", "is not one of 'task' | 'domain' | 'class'"),
        ("[benchmark]\ndatta = 'full'", "Closest valid keys: benchmark.data"),
        ("[model]\nhidden = [100, 'a']", "model.hidden[1] = 'a' should be int"),
        ("[model]\nhidden = 100", "should be a list of int"),
        ("[model]\nhidden = [0]", "model.hidden = [0]: every width must be >= 1"),
        ("training = 3", "training should be a table"),
        ("[training]\nlr = -1.0", "training.lr = -1.0 must be > 0"),
        ("device = 'tpu'", "device = 'tpu' is not one of"),
        ("[method]\nname = 'finetune'\nlambda = 3", "unknown key 'method.lambda'"),
    ],
)
def test_bad_preset_is_rejected_naming_file_and_key(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_text(tmp_path, text)
    msg = str(e.value)
    assert expected in msg
    assert str(tmp_path / "bad.toml") in msg
    assert "\n" not in msg


@pytest.mark.parametrize(
    "override, expected",
    [
        ("training.lr=abc", "--set: training.lr = 'abc' should be float"),
        ("training.lrr=1", "--set: unknown key 'training.lrr'. Closest valid keys: training.lr"),
        ("lr", "expected KEY=VALUE"),
        ("=3", "empty key"),
        ("model.hidden=[1,0]", "--set: model.hidden = [1, 0]: every width must be >= 1"),
        ("training.lr.x=1", "is a value, not a table"),
    ],
)
def test_bad_override_names_the_override(tmp_path: Path, override: str, expected: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_text(tmp_path, GOOD, [override])
    assert expected in str(e.value)


def test_override_values_are_toml_and_bare_words_are_strings() -> None:
    assert parse_override("training.lr=1e-3") == (["training", "lr"], 1e-3)
    assert parse_override("model.hidden=[10, 20]") == (["model", "hidden"], [10, 20])
    assert parse_override("device=cpu") == (["device"], "cpu")
    assert parse_override("training.reset_optimizer=false") == (["training", "reset_optimizer"], False)


def test_int_is_accepted_for_float() -> None:
    cfg = load_preset("demo", ["training.lr=1"])
    assert cfg.training.lr == 1.0 and isinstance(cfg.training.lr, float)


def test_unknown_preset_suggests_close_names() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'demo'"):
        load_preset("dmeo")


def test_every_shipped_preset_validates() -> None:
    names = preset_names()
    assert "demo" in names and "split-mnist/finetune" in names
    for name in names:
        load_preset(name)
