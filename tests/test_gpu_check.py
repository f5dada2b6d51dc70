"""benchmarks/gpu_check.py --smoke: every part of the prepared GPU check runs at tiny sizes on the CPU
(gloo for the one-process DDP step) and reports what it measured."""

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_smoke_runs_every_part():
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_check.py"), "--smoke"],
                            capture_output=True, text=True, timeout=180, env=env, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["mode"] == "smoke" and report["failed_parts"] == []
    parts = report["parts"]
    assert set(parts) == {"train_step", "inference", "dcal_train", "reid_eval", "compiled_step"}
    for task in ("fgvc", "reid"):
        for key in (f"{task}_timm", f"{task}_dcal", f"{task}_timm_checkpointing", f"{task}_dcal_checkpointing"):
            assert parts["train_step"][key]["seconds"] > 0, key
        assert parts["inference"][f"{task}_dcal"]["seconds"] > 0
    for task in ("fgvc", "reid"):
        compiled = parts["compiled_step"]
        assert compiled[f"{task}_dcal_compiled"]["seconds"] > 0 and compiled[f"{task}_eager_over_compiled"] > 0
    train = parts["dcal_train"]
    assert train["ok"] and train["optimiser_steps"] == train["expected_steps"] > 0
    assert train["ddp_one_process"] == {"backend": "gloo", "all_reduce": 1.0, "grad_finite": True}
    reid = parts["reid_eval"]
    assert reid["metrics_identical"] and reid["rerank_identical"]
    assert 0 < reid["metrics_device"]["mAP"] <= 1
