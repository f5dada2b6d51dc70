"""Classification accuracy, Re-ID ranking metrics and re-ranking.

Re-ID: :func:`reid_metrics` (features in, CMC / mAP / mINP out, in bounded memory),
:func:`reid_metrics_from_distances` (a given distance matrix or a stream of its row chunks),
:func:`re_ranking` / :func:`re_ranking_chunks` (k-reciprocal re-ranking, Zhong et al. CVPR 2017).
Classification and localisation metrics are imported by their submodule paths.
"""

from dcal.evaluation.reid_metrics import EvaluationError, reid_metrics, reid_metrics_from_distances

__all__ = ["EvaluationError", "reid_metrics", "reid_metrics_from_distances"]
