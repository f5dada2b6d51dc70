"""dcal: Dual Cross-Attention Learning (Zhu et al., CVPR 2022) on timm vision transformers.

``dcal.create_model`` is :func:`dcal.model.factory.create_model`, imported on first use so that
commands which never build a model (``dcal data``, ``dcal demo-data``) do not pay for timm.
"""

from dcal.errors import CheckpointError, ConfigError, DatasetError, DCALError

__version__ = "0.1.0"
__all__ = ["create_model", "DCALError", "ConfigError", "DatasetError", "CheckpointError", "__version__"]


def __getattr__(name):
    if name == "create_model":
        from dcal.model.factory import create_model

        return create_model
    raise AttributeError(f"module 'dcal' has no attribute {name!r}")
