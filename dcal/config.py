"""The typed configuration of a training or evaluation run.

A :class:`Config` is a plain dataclass of sections (``model``, ``data``, ``optim``, ``train``,
``loss``, ``eval``), in the spirit of nanoGPT's configuration: no global state, no registry.  It is
built from, in order of precedence,

1. the defaults below, which are the synthetic FGVC demo that ``dcal train`` runs with no arguments;
2. a YAML file (``--config``), nested by section;
3. ``key=value`` overrides with dotted keys (``optim.lr=1e-4``, ``model.glca=false``), whose values
   are parsed as YAML scalars.

Every key is checked: an unknown or misspelt key raises :class:`~dcal.errors.ConfigError` naming
the closest valid key, and a value of the wrong type raises one naming the key and the expected
type.  :func:`save_config` writes the resolved configuration (``config.yaml`` in the run folder);
:func:`config_from_dict` rebuilds it from a checkpoint.

The paper's settings per dataset (Sec. 4) live in ``configs/fgvc/*.yaml`` and
``configs/reid/*.yaml``.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml

from dcal.config_checks import check_settings, coerce, key_hint
from dcal.errors import ConfigError


@dataclass
class ModelConfig:
    """The network: a timm ViT backbone with the DCAL branches (Sec. 3)."""

    backbone: str = "vit_tiny_patch16_224"  # any timm VisionTransformer name
    pretrained: Union[bool, str] = False  # True: timm's weights by name; a path: a local weights file
    glca: bool = True  # global-local cross-attention branch (Sec. 3.2)
    glca_ratio: Optional[float] = None  # R, share of patch tokens GLCA queries; None: the paper's 0.1 FGVC, 0.3 Re-ID
    glca_selection: str = "rollout"  # GLCA's queries: rollout (Sec. 3.2), last (last block's attention only), random
    glca_readout: str = "local"  # local: mean of GLCA's selected-token outputs; cls: class token (ignores the selection)
    pwca_blocks: Optional[int] = None  # T, the leading blocks with PWCA (Sec. 3.3); None: the paper's 12, capped at the depth; 0: off
    neck_feat: str = "before"  # Re-ID test feature: before or after the BNNecks (TransReID: before)
    grad_checkpointing: bool = False  # recompute each block in the backward pass (less memory, more time)
    init_from: Optional[str] = None  # a dcal checkpoint or .safetensors to start from (heads of another class count re-initialised)
    drop_path_rate: float = 0.1  # stochastic depth
    timm_kwargs: dict = field(  # passed to timm.create_model (e.g. a small ViT for the demo)
        default_factory=lambda: {"patch_size": 8, "embed_dim": 128, "depth": 4, "num_heads": 4}
    )


@dataclass
class DataConfig:
    """The dataset, its splits and the input pipeline."""

    dataset: str = "cub200"  # a name in dcal.data.catalog (the synthetic demos use the CUB and Market layouts)
    root: str = "data/demo-fgvc"  # the dataset's folder (`dcal demo-data` writes the synthetic ones)
    synthetic: bool = True  # write the synthetic demo set (of the task) to root first if it is not there
    synthetic_options: dict = field(default_factory=dict)  # passed to the synthetic writer (FGVC: train_per_class, test_per_class)
    options: dict = field(default_factory=dict)  # parser options of the dataset (e.g. MSMT17's val split)
    train_split: Optional[str] = None  # None: the dataset's own (train; trainval for FGVC-Aircraft)
    test_split: Optional[str] = None  # FGVC evaluation split; None: test (Re-ID evaluates query vs gallery)
    val_split: Optional[str] = None  # an official validation split (FGVC, e.g. aircraft's val): picks best.pt
    val_fraction: Optional[float] = None  # hold out this share of the training set to pick best.pt (Re-ID: of its identities)
    img_size: list = field(default_factory=lambda: [64, 64])  # network input, [height, width]
    mean: Optional[list] = None  # input normalisation mean; None: the backbone's (timm's pretrained config)
    std: Optional[list] = None  # input normalisation std; None: the backbone's
    interpolation: Optional[str] = None  # resize interpolation (bilinear, bicubic, ...); None: the backbone's
    resize_size: Optional[list] = field(default_factory=lambda: [64, 64])  # resize before cropping, [height, width]; None: the transform's default
    padding: int = 10  # Re-ID training: pad before the random crop
    erasing_prob: float = 0.5  # Re-ID training: random erasing probability
    batch_size: int = 32  # images per optimiser step over all processes and accumulation steps
    num_instances: int = 4  # Re-ID: images per identity in a batch (P x K sampling)
    num_workers: int = 0  # data-loader processes per training process (0: load in the training process)
    skip_corrupt: bool = False  # skip unreadable images instead of stopping


@dataclass
class OptimConfig:
    """The optimiser: AdamW for FGVC, SGD for Re-ID (paper Sec. 4)."""

    name: str = "adamw"  # any timm optimizer name (adamw, sgd, ...)
    lr: float = 1e-3
    lr_reference_batch: Optional[int] = None  # lr is scaled by batch_size / this; None: used as given
    weight_decay: float = 0.05
    momentum: float = 0.9  # SGD only


@dataclass
class TrainConfig:
    """The schedule and the training loop's switches."""

    epochs: int = 24
    warmup_epochs: float = 2.0
    warmup_lr: float = 1e-6
    min_lr: float = 1e-6
    accum_steps: int = 1  # gradient accumulation: micro-batches per optimiser step
    clip_grad: Optional[float] = None  # max gradient norm; None: no clipping
    amp: bool = False  # mixed precision: bfloat16 on the CPU, float16 with a GradScaler on CUDA
    ema: bool = False  # keep an exponential moving average of the weights (evaluated and saved as best)
    ema_decay: float = 0.9998
    seed: int = 0
    device: str = "auto"  # auto (CUDA if available), cpu, cuda
    threads: int = 1  # CPU threads per process (torch.set_num_threads); 0: torch's default
    eval_every: int = 4  # epochs between evaluations (the last epoch is always evaluated)
    checkpoint_every: int = 0  # also write checkpoints/last.pt every N optimiser steps; 0: per epoch only
    save_safetensors: bool = False  # also write the weights of last/best as .safetensors
    pwca_distractor: str = "random"  # PWCA's I2: random (any other image of the micro-batch) or other (another label only)
    sync_bn: bool = False  # Re-ID BNNecks as SyncBatchNorm under DDP on CUDA (NCCL)
    log_every: int = 10  # optimiser steps between loss/lr records in TensorBoard
    compile: bool = False  # torch.compile the training step (model and loss), as timm's --torchcompile; checkpoints stay plain


@dataclass
class LossConfig:
    """The per-branch losses, combined with uncertainty weighting (Sec. 3.4)."""

    label_smoothing: float = 0.0
    weight_lr: Optional[float] = None  # learning rate of the uncertainty weights w_b (own group, no decay); None: the network's
    triplet_margin: Optional[float] = None  # Re-ID batch-hard triplet loss; None: soft margin log(1 + exp(d_ap - d_an)), as TransReID


@dataclass
class EvalConfig:
    """Evaluation settings."""

    batch_size: int = 64  # per process
    metric: str = "euclidean"  # Re-ID distance: euclidean or cosine
    re_ranking: bool = False  # Re-ID k-reciprocal re-ranking
    flip: bool = False  # test-time horizontal flip: FGVC mean of the scores, Re-ID sum of the features
    datasets: list = field(default_factory=list)  # more test sets of the task, each {dataset, root, options, name}; metrics under "<name>/" (name: the dataset)


@dataclass
class SlurmConfig:
    """One run's Slurm job (``--launcher slurm``, through submitit): one task per GPU, DDP over them."""

    partition: Optional[str] = None  # None: the cluster's default partition
    nodes: int = 1
    gpus_per_node: int = 1  # GPUs of the run on each node (one DDP process each); 0: one CPU task
    cpus_per_gpu: int = 8  # CPUs per process (data-loader workers + the training process)
    mem_gb: Optional[float] = None  # memory per node; None: the partition's default
    time_min: int = 1440  # the job's time limit; a timed-out run is requeued and resumes from last.pt
    account: Optional[str] = None
    qos: Optional[str] = None
    constraint: Optional[str] = None  # e.g. a GPU type: a100
    additional: dict = field(default_factory=dict)  # any other sbatch option, e.g. {exclude: node12}


@dataclass
class PaperConfig:
    """The paper's figures for this dataset (Tables 1 and 2), shown beside measured ones.

    ``results`` maps a timm backbone name (without the weights tag) to ``{baseline: {...}, dcal:
    {...}}`` of the paper's metrics (``top1``; ``mAP`` and ``rank1``); they apply to runs of
    ``dataset`` on real data (``data.synthetic: false``).
    """

    dataset: Optional[str] = None  # the data.dataset the figures are for
    title: Optional[str] = None  # the paper's name of the dataset (a table column)
    results: dict = field(default_factory=dict)


@dataclass
class Config:
    """A complete run: every section with its defaults (the synthetic FGVC demo)."""

    task: str = "fgvc"  # fgvc or reid
    name: str = "demo-fgvc"  # run name; the default output folder is runs/<name>
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    slurm: SlurmConfig = field(default_factory=SlurmConfig)
    paper: PaperConfig = field(default_factory=PaperConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def valid_keys(cls=Config, prefix: str = "") -> list[str]:
    """Every dotted key of the schema (sections and their fields)."""
    keys = []
    for f in dataclasses.fields(cls):
        key = prefix + f.name
        keys.append(key)
        if dataclasses.is_dataclass(_hints(cls)[f.name]):
            keys.extend(valid_keys(_hints(cls)[f.name], key + "."))
    return keys


def load_config(path=None, overrides=()) -> Config:
    """The defaults, updated by the YAML file at ``path`` (if any), then by ``key=value`` strings."""
    config = Config()
    if path is not None:
        path = Path(path)
        data = read_yaml_file(path)
        if data is None:
            raise ConfigError(f"config file {path} is empty (no settings); write the sections to change "
                              "(see configs/), or leave out --config to run the synthetic demo")
        if not isinstance(data, dict):
            raise ConfigError(f"config file {path}: expected a mapping of sections, got {type(data).__name__}")
        config = _merge(config, data, source=str(path))
        if "name" not in data:
            config.name = path.stem
    return apply_overrides(config, overrides)


def read_yaml_file(path: Path):
    """The YAML document in ``path`` (None when it holds none), or a one-line :class:`ConfigError`
    naming the file: missing, a folder, not UTF-8 text, not valid YAML (with the line and column)."""
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder; give a YAML file, e.g. configs/fgvc/cub200.yaml")
    if not path.is_file():
        raise ConfigError(f"config file {path} not found")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {error.start} is {error.object[error.start]:#04x}); "
                          "a config is a YAML text file") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        context = getattr(error, "context", None)
        raise ConfigError(f"config file {path} is not valid YAML{where}: {problem}"
                          + (f" ({context})" if context else "")) from None
    except OSError as error:
        raise ConfigError(f"config file {path} cannot be read: {error.strerror}") from None


def apply_overrides(config: Config, overrides=()) -> Config:
    """A copy of ``config`` with ``key=value`` strings applied (values parsed as YAML scalars)."""
    config = copy.deepcopy(config)
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected key=value, e.g. optim.lr=1e-4")
        try:
            value = yaml.safe_load(text) if text else ""
        except yaml.YAMLError:
            value = text
        config = _set(config, key.strip(), value, source="command line")
    check_settings(flat_settings(config))
    return config


def config_from_dict(data: dict, source: str = "checkpoint") -> Config:
    """Rebuild a :class:`Config` from :meth:`Config.to_dict` output (e.g. a checkpoint's ``config``)."""
    config = _merge(Config(), data, source=source)
    check_settings(flat_settings(config))
    return config


def save_config(config: Config, path) -> None:
    """Write the resolved configuration as YAML."""
    Path(path).write_text(yaml.safe_dump(config.to_dict(), sort_keys=False), encoding="utf-8")


def _merge(config: Config, data: dict, source: str, prefix: str = "") -> Config:
    for key, value in data.items():
        dotted = prefix + str(key)
        if isinstance(value, dict) and dotted in _section_keys():
            config = _merge(config, value, source, dotted + ".")
        else:
            config = _set(config, dotted, value, source)
    return config


def _section_keys() -> set:
    return {f.name for f in dataclasses.fields(Config) if dataclasses.is_dataclass(_hints(Config)[f.name])}


def config_value(config: Config, key: str):
    """The value of the dotted ``key`` (``"task"``, ``"model.glca_ratio"``)."""
    owner, name = _owner(config, key)
    return getattr(owner, name)


def flat_settings(config: Config) -> dict:
    """``{dotted key: value}`` of every setting; a dict-valued one (``model.timm_kwargs``) stays one value."""
    flat = {}
    for section, value in config.to_dict().items():
        if isinstance(value, dict) and section in _section_keys():
            flat.update({f"{section}.{name}": v for name, v in value.items()})
        else:
            flat[section] = value
    return flat


def _owner(config: Config, key: str):
    """The section object holding ``key`` and the field's name in it."""
    *sections, name = key.split(".")
    owner = config
    for section in sections:
        owner = getattr(owner, section)
    return owner, name


def _set(config: Config, key: str, value: Any, source: str) -> Config:
    if key not in valid_keys():
        raise ConfigError(f"{source}: unknown config key {key!r}; {key_hint(key, valid_keys())}")
    owner, name = _owner(config, key)
    if dataclasses.is_dataclass(_hints(type(owner))[name]):
        raise ConfigError(f"{source}: {key!r} is a section; set its keys, e.g. {key}.{dataclasses.fields(_hints(type(owner))[name])[0].name}=...")
    setattr(owner, name, coerce(value, _hints(type(owner))[name], key, source))
    return config


@functools.lru_cache(maxsize=None)
def _hints(cls) -> dict:
    """The resolved annotations of a section class (cached: resolving them is slow, and every key
    of every config read looks them up)."""
    return typing.get_type_hints(cls)
