"""The typed config: defaults, YAML files, key=value overrides, and the errors for bad keys and values."""

from pathlib import Path

import pytest
import yaml

from dcal.config import Config, apply_overrides, config_from_dict, load_config, save_config
from dcal.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_defaults_are_the_fgvc_demo_config():
    assert load_config(CONFIGS / "demo" / "fgvc.yaml") == Config()


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*/*.yaml")), ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_shipped_config_parses(path):
    config = load_config(path)
    assert config.name == path.stem or path.parent.name == "demo"
    assert config.task == ("reid" if path.parent.name == "reid" or path.stem == "reid" else "fgvc")


def test_paper_settings():
    cub = load_config(CONFIGS / "fgvc" / "cub200.yaml")
    assert (cub.optim.name, cub.optim.weight_decay, cub.data.batch_size, cub.train.epochs) == ("adamw", 0.05, 16, 100)
    assert cub.optim.lr * cub.data.batch_size / cub.optim.lr_reference_batch == pytest.approx(5e-4 * 16 / 512)
    assert (cub.data.img_size, cub.data.resize_size, cub.model.glca_ratio) == ([448, 448], [550, 550], 0.1)
    market = load_config(CONFIGS / "reid" / "market1501.yaml")
    assert (market.optim.lr, market.optim.momentum, market.optim.weight_decay) == (0.008, 0.9, 1e-4)
    assert (market.data.batch_size, market.data.num_instances, market.train.epochs) == (64, 4, 120)
    assert (market.data.img_size, market.model.glca_ratio) == ([256, 128], 0.3)
    assert load_config(CONFIGS / "reid" / "veri776.yaml").data.img_size == [256, 256]
    assert load_config(CONFIGS / "reid" / "msmt17.yaml").data.options == {"include_val": True}


def test_overrides_are_parsed_as_yaml_scalars():
    config = load_config(None, ["optim.lr=1e-4", "model.glca=false", "data.img_size=[32, 48]",
                                "model.glca_ratio=null", "model.pretrained=/w/vit.npz", "train.epochs=7"])
    assert config.optim.lr == 1e-4 and isinstance(config.optim.lr, float)
    assert config.model.glca is False and config.data.img_size == [32, 48]
    assert config.model.glca_ratio is None and config.model.pretrained == "/w/vit.npz"
    assert config.train.epochs == 7


def test_unknown_key_names_the_closest_valid_key(tmp_path):
    with pytest.raises(ConfigError, match=r"'optim\.lrr'.*did you mean 'optim\.lr'"):
        load_config(None, ["optim.lrr=0.1"])
    with pytest.raises(ConfigError, match=r"'trian\.epochs'.*did you mean 'train\.epochs'"):
        load_config(None, ["trian.epochs=3"])
    path = tmp_path / "bad.yaml"
    path.write_text("model:\n  backbon: vit_small_patch16_224\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*'model\.backbon'.*did you mean 'model\.backbone'"):
        load_config(path)


@pytest.mark.parametrize("override, key", [
    ("optim.lr=fast", "optim.lr"),
    ("model.glca=3", "model.glca"),
    ("train.epochs=1.5", "train.epochs"),
    ("data.img_size=64", "data.img_size"),
    ("task=detection", "task"),
])
def test_wrong_type_or_value_names_the_key(override, key):
    with pytest.raises(ConfigError, match=f"'{key}'"):
        load_config(None, [override])


def test_malformed_override_and_missing_file():
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["optim.lr"])
    with pytest.raises(ConfigError, match="not found"):
        load_config("no/such/config.yaml")


def test_saved_config_round_trips(tmp_path):
    config = load_config(CONFIGS / "reid" / "msmt17.yaml", ["train.epochs=3"])
    save_config(config, tmp_path / "config.yaml")
    assert load_config(tmp_path / "config.yaml") == config
    assert config_from_dict(yaml.safe_load((tmp_path / "config.yaml").read_text())) == config
    assert apply_overrides(config, ["train.epochs=4"]).train.epochs == 4 and config.train.epochs == 3
