"""Build the DCAL model a :class:`~dcal.config.Config` describes, start a new run's from ``model.init_from``,
and adapt it to the run (SyncBatchNorm)."""

from __future__ import annotations

import torch

from dcal.config import Config
from dcal.engine.init_from import init_from
from dcal.errors import ConfigError
from dcal.model.factory import create_model


def build_model(config: Config, num_classes: int, *, pretrained=None):
    """``dcal.create_model`` with the config's ``model`` section and input size; it only builds.

    ``pretrained`` overrides ``model.pretrained`` (``False`` where every weight comes from elsewhere:
    a checkpoint, a resumed run, ``model.init_from``).
    """
    m = config.model
    model = create_model(
        m.backbone,
        num_classes,
        task=config.task,
        img_size=tuple(config.data.img_size),
        pretrained=m.pretrained if pretrained is None else pretrained,
        glca_ratio=m.glca_ratio,
        pwca_blocks=m.pwca_blocks,
        glca=m.glca,
        glca_readout=m.glca_readout,
        glca_selection=m.glca_selection,
        neck_feat=m.neck_feat,
        drop_path_rate=m.drop_path_rate,
        **m.timm_kwargs,
    )
    model.set_grad_checkpointing(m.grad_checkpointing)
    return model


def new_run_model(config: Config, num_classes: int, *, announce: bool = True):
    """The model a new run starts from: with ``model.init_from``, a trained dcal model's weights
    (:mod:`dcal.engine.init_from`; the backbone's pretrained weights are not loaded), what was
    loaded and re-initialised printed when ``announce``; else :func:`build_model`."""
    m = config.model
    if m.init_from is None:
        return build_model(config, num_classes)
    model = build_model(config, num_classes, pretrained=False)
    report = init_from(model, m.init_from)
    if announce:
        ignored = f"\n  model.pretrained={m.pretrained!r} is not loaded: every backbone weight comes from the file" \
            if m.pretrained else ""
        print(report.summary() + ignored, flush=True)
    return model


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
