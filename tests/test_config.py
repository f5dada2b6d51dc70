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
    reid = path.parent.name == "reid" or f"{path.parent.name}/{path.stem}" in ("demo/reid", "transfer/emoji")
    assert config.task == ("reid" if reid else "fgvc")


# The paper's training settings (§4.1 FGVC, §4.2 Re-ID, the latter TransReID's), written out once.
PAPER = {
    "fgvc": {
        "resize": [550, 550], "crop": [448, 448], "optimizers": ("adam", "adamw"), "weight_decay": 0.05,
        "lr_per_512_images": 5e-4, "epochs": 100, "batch_size": 16, "R": 0.1, "T": 12, "label_smoothing": 0.0,
    },
    "reid": {
        "size": {"persons": [256, 128], "vehicles": [256, 256]}, "optimizers": ("momentum",), "momentum": 0.9,
        "weight_decay": 1e-4, "lr": 0.008, "epochs": 120, "batch_size": 64, "identities_per_batch": 16,
        "images_per_identity": 4, "R": 0.3, "label_smoothing": 0.0, "triplet_margin": None,  # soft margin
        "padding": 10, "erasing_prob": 0.5, "warmup_epochs": 5, "warmup_lr": 0.01 * 0.008, "min_lr": 0.002 * 0.008,
    },
}
VEHICLE_DATASETS = {"veri776", "vehicleid"}


@pytest.mark.parametrize("path", sorted((CONFIGS / "fgvc").glob("*.yaml")), ids=lambda p: p.stem)
def test_fgvc_configs_have_the_papers_settings(path):
    from dcal.engine.optimizer import scaled_lr

    paper, config = PAPER["fgvc"], load_config(path)
    assert (config.data.resize_size, config.data.img_size) == (paper["resize"], paper["crop"])
    assert config.optim.name in paper["optimizers"] and config.optim.weight_decay == paper["weight_decay"]
    assert (config.train.epochs, config.data.batch_size) == (paper["epochs"], paper["batch_size"])
    assert scaled_lr(config) == pytest.approx(paper["lr_per_512_images"] * paper["batch_size"] / 512)
    doubled = load_config(path, [f"data.batch_size={2 * paper['batch_size']}"])  # the rate scales with the batch
    assert scaled_lr(doubled) == pytest.approx(paper["lr_per_512_images"] * 2 * paper["batch_size"] / 512)
    assert (config.model.glca_ratio, config.model.pwca_blocks) == (paper["R"], paper["T"])
    assert config.loss.label_smoothing == paper["label_smoothing"]


@pytest.mark.parametrize("path", sorted((CONFIGS / "reid").glob("*.yaml")), ids=lambda p: p.stem)
def test_reid_configs_have_the_papers_settings(path):
    from dcal.engine.optimizer import scaled_lr

    paper, config = PAPER["reid"], load_config(path)
    kind = "vehicles" if config.data.dataset in VEHICLE_DATASETS else "persons"
    assert config.data.img_size == paper["size"][kind]
    assert config.optim.name in paper["optimizers"] and config.optim.momentum == paper["momentum"]
    assert config.optim.weight_decay == paper["weight_decay"] and scaled_lr(config) == paper["lr"]
    assert (config.train.epochs, config.data.batch_size) == (paper["epochs"], paper["batch_size"])
    assert config.data.num_instances == paper["images_per_identity"]
    assert config.data.batch_size // config.data.num_instances == paper["identities_per_batch"]
    assert config.model.glca_ratio == paper["R"]
    assert (config.loss.label_smoothing, config.loss.triplet_margin) == (paper["label_smoothing"], paper["triplet_margin"])
    assert (config.data.padding, config.data.erasing_prob) == (paper["padding"], paper["erasing_prob"])
    t = config.train
    assert (t.warmup_epochs, t.warmup_lr, t.min_lr) == pytest.approx((paper["warmup_epochs"], paper["warmup_lr"], paper["min_lr"]))


def test_msmt17_trains_on_train_and_val():
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
