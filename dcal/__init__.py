"""dcal: Dual Cross-Attention Learning (Zhu et al., CVPR 2022) on timm vision transformers."""

from dcal.errors import CheckpointError, ConfigError, DatasetError, DCALError

__version__ = "0.1.0"


def create_model(*args, **kwargs):
    """Build a DCAL model; see :func:`dcal.model.factory.create_model`."""
    from dcal.model.factory import create_model as _create_model

    return _create_model(*args, **kwargs)


__all__ = ["create_model", "DCALError", "ConfigError", "DatasetError", "CheckpointError", "__version__"]
