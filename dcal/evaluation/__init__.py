"""Classification accuracy, Re-ID ranking metrics and re-ranking.

Re-ID: :func:`reid_metrics` (features in, CMC / mAP / mINP out, in bounded memory),
:func:`reid_metrics_from_distances` (a given distance matrix or a stream of its row chunks),
:func:`re_ranking` / :func:`re_ranking_chunks` (k-reciprocal re-ranking, Zhong et al. CVPR 2017).
Classification and localisation metrics are imported by their submodule paths.

Note: the function ``reid_metrics`` shadows the submodule of the same name as an attribute of
this package; import the submodule's other names with ``from dcal.evaluation.reid_metrics import …``.
"""

from dcal.evaluation.re_ranking import re_ranking, re_ranking_chunks
from dcal.errors import EvaluationError
from dcal.evaluation.reid_metrics import reid_metrics, reid_metrics_from_distances

__all__ = ["EvaluationError", "re_ranking", "re_ranking_chunks", "reid_metrics", "reid_metrics_from_distances"]
