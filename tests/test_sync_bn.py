"""train.sync_bn: the Re-ID BNNecks become SyncBatchNorm under DDP on CUDA; several processes on the
CPU (gloo, which SyncBatchNorm does not support) are a ConfigError; one process is left as it is."""

import pytest
import torch

import dcal
from dcal.config import load_config
from dcal.engine.distributed import DistributedContext
from dcal.engine.model_setup import sync_batchnorm
from dcal.errors import ConfigError


def _model():
    return dcal.create_model("vit_tiny_patch16_224", 5, task="reid", img_size=(32, 16), patch_size=8,
                             embed_dim=32, depth=2, num_heads=2)


def test_gloo_processes_cannot_sync_batchnorm():
    config = load_config(None, ["task=reid", "train.sync_bn=true"])
    with pytest.raises(ConfigError, match="train.sync_bn=true needs DDP on CUDA"):
        sync_batchnorm(_model(), config, DistributedContext(rank=0, world_size=2))


def test_one_process_or_sync_bn_off_keeps_the_model():
    model = _model()
    on = load_config(None, ["task=reid", "train.sync_bn=true"])
    assert sync_batchnorm(model, on, DistributedContext()) is model
    off = load_config(None, ["task=reid"])
    assert sync_batchnorm(model, off, DistributedContext(rank=0, world_size=2)) is model


def test_converted_necks_keep_their_weights_and_inference():
    """What sync_batchnorm returns on CUDA: SyncBatchNorm necks with the same state and eval output."""
    model = _model()
    with torch.no_grad():
        model.train()
        model.forward_branches(torch.randn(6, 3, 32, 16))
    model.eval()
    x = torch.randn(3, 3, 32, 16)
    expected, state = model(x), {k: v.clone() for k, v in model.state_dict().items()}
    converted = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model).eval()
    assert isinstance(converted.sa_head.bn, torch.nn.SyncBatchNorm)
    assert isinstance(converted.glca_head.bn, torch.nn.SyncBatchNorm)
    assert not converted.sa_head.bn.bias.requires_grad  # the BNNeck's frozen shift stays frozen
    assert converted.state_dict().keys() == state.keys()
    assert all(torch.equal(v, state[k]) for k, v in converted.state_dict().items())
    assert torch.equal(converted(x), expected)
