"""Build the DCAL model a :class:`~dcal.config.Config` describes, and adapt it to the run (SyncBatchNorm)."""

from __future__ import annotations

import torch

from dcal.config import Config
from dcal.errors import ConfigError


def build_model(config: Config, num_classes: int, *, pretrained=None):
    """``dcal.create_model`` with the config's ``model`` section and input size.

    ``pretrained`` overrides ``model.pretrained`` (a checkpoint being loaded needs no backbone
    weights, so :func:`dcal.engine.checkpoint.load_model` passes ``False``).
    """
    from dcal import create_model

    m = config.model
    return create_model(
        m.backbone,
        num_classes,
        task=config.task,
        img_size=tuple(config.data.img_size),
        pretrained=m.pretrained if pretrained is None else pretrained,
        glca_ratio=m.glca_ratio,
        pwca_blocks=m.pwca_blocks,
        glca=m.glca,
        drop_path_rate=m.drop_path_rate,
        **m.timm_kwargs,
    )


def sync_batchnorm(model, config: Config, context):
    """``model`` with its BatchNorm layers (the Re-ID BNNecks) as ``SyncBatchNorm`` when
    ``train.sync_bn`` is on and the run is DDP on CUDA; batch statistics are then taken over the
    micro-batches of all processes.  Elsewhere the model is returned as it is (one process: there is
    nothing to synchronise); ``train.sync_bn`` with several processes on the CPU (gloo, which
    ``SyncBatchNorm`` does not support) raises a :class:`~dcal.errors.ConfigError`.
    """
    if not config.train.sync_bn or not context.distributed:
        return model
    backend = torch.distributed.get_backend() if torch.distributed.is_initialized() else None
    if context.device.type != "cuda" or backend != "nccl":
        raise ConfigError(
            f"train.sync_bn=true needs DDP on CUDA with NCCL; this run has {context.world_size} processes "
            f"on {context.device.type} (backend {backend}); set train.sync_bn=false"
        )
    return torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
