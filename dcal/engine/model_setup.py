"""Build the DCAL model a :class:`~dcal.config.Config` describes."""

from __future__ import annotations

from dcal.config import Config


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
