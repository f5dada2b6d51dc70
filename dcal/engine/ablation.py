"""The paper's ablations for any config: each variant trained for each seed as an ordinary run.

A variant (:data:`VARIANTS`, paper §4.3, Tables 5–7) is a list of ``key=value`` overrides on the
config: ``baseline`` (the plain ViT), ``glca`` and ``pwca`` (one branch each), ``dcal`` (the
method) and three controls of GLCA's query selection, ``dcal_random``, ``dcal_last`` and
``dcal_cls``.

:func:`run_ablation` trains ``DIR/<variant>-s<seed>/`` for each pair, skips runs that already
finished, resumes unfinished ones (an interrupted ablation continues where it stopped), and writes
``DIR/ablation.json`` and ``DIR/ablation.md`` after every run.  ``ablation.json``:
``{"metric": "top1" | "mAP", "variants": {NAME: {"overrides": [...], "runs": [{"seed": S,
"run_dir": ..., "metrics": {...final evaluation...}}], "mean": float, "std": float}}}``; ``std``
is the sample standard deviation over the seeds (0 with one seed).  Each run trained by an ablation also carries
``wall_s`` and ``cpu_s``, the seconds its training took, kept in the run folder
(:data:`dcal.engine.run_log.TIMING_FILE`, summed over a resumed run's parts, also when a job trained it) so that a
later invocation that skips the run still reports them.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

from dcal.config import Config, load_config
from dcal.engine import distributed, run_folder, trainer
from dcal.engine.run_log import add_timing, read_records, read_timing
from dcal.errors import CheckpointError, ConfigError
from dcal.evaluation.paper_figures import PAPER_METRICS, paper_reference


@dataclass(frozen=True)
class Variant:
    """One setting of the ablation: GLCA's ``(glca_selection, glca_readout)``, or None without GLCA,
    and whether PWCA is on."""

    glca: Optional[tuple]
    pwca: bool


#: Every variant, in the order they are trained and reported.
VARIANTS = {
    "baseline": Variant(glca=None, pwca=False),  # the plain ViT
    "glca": Variant(glca=("rollout", "local"), pwca=False),  # GLCA only, its queries chosen by rollout
    "pwca": Variant(glca=None, pwca=True),  # PWCA only
    "dcal": Variant(glca=("rollout", "local"), pwca=True),  # GLCA and PWCA: the method
    "dcal_random": Variant(glca=("random", "local"), pwca=True),  # GLCA's queries drawn at random (the paper's control)
    "dcal_last": Variant(glca=("last", "local"), pwca=True),  # queries from the last block's attention, no rollout
    "dcal_cls": Variant(glca=("rollout", "cls"), pwca=True),  # GLCA's class-token readout, which ignores the selection
}
DEFAULT_VARIANTS = tuple(VARIANTS)[:5]


def variant_overrides(variant: str, config: Config) -> list[str]:
    """The overrides that turn ``config`` into ``variant``.  Variants with PWCA keep the config's
    ``model.pwca_blocks`` unless it is 0, which becomes the paper's T (``null``)."""
    if variant not in VARIANTS:
        raise ConfigError(f"unknown ablation variant {variant!r}; the variants are {', '.join(VARIANTS)}")
    setting = VARIANTS[variant]
    overrides = []
    if setting.glca is not None:
        selection, readout = setting.glca
        overrides += ["model.glca=true", f"model.glca_selection={selection}", f"model.glca_readout={readout}"]
    else:
        overrides.append("model.glca=false")
    if not setting.pwca:
        overrides.append("model.pwca_blocks=0")
    elif config.model.pwca_blocks == 0:
        overrides.append("model.pwca_blocks=null")
    return overrides


def parse_variants(text: Optional[str]) -> list[str]:
    """``"a,b,..."`` as a list of known variants (default: the first five)."""
    if not text:
        return list(DEFAULT_VARIANTS)
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        if name not in VARIANTS:
            raise ConfigError(f"--variants: unknown variant {name!r}; the variants are {', '.join(VARIANTS)}")
    return names


@dataclass
class AblationRun:
    """One (variant, seed) of an ablation: its run folder and resolved config."""

    variant: str
    seed: int
    run_dir: Path
    config: Config

    def finished(self) -> bool:
        try:
            progress = run_folder.read_progress(self.run_dir)
        except CheckpointError:  # an unreadable last.pt: an unfinished run
            return False
        return progress is not None and progress.finished(self.config.train.epochs)


@dataclass
class Ablation:
    """Every run of one ablation (variants × seeds of one config) and where it writes."""

    out_dir: Path
    metric: str
    variants: dict  # variant -> its overrides
    runs: list

    def __post_init__(self):
        self.out_dir = Path(self.out_dir)


def plan_ablation(config_path, seeds: Sequence[int], variants: Sequence[str], out_dir=None,
                  overrides: Sequence[str] = ()) -> Ablation:
    """The runs of an ablation of ``config_path`` (default folder ``runs/<name>-ablation``)."""
    base = load_config(config_path, overrides)
    if not seeds:
        raise ConfigError("--seeds: give at least one seed")
    out_dir = Path(out_dir) if out_dir is not None else Path("runs") / f"{base.name}-ablation"
    variant_args = {variant: variant_overrides(variant, base) for variant in variants}
    runs = []
    for variant, args in variant_args.items():
        for seed in seeds:
            config = load_config(config_path, [*overrides, *args, f"train.seed={seed}"])
            config.data.root = str(Path(config.data.root).expanduser().resolve())
            runs.append(AblationRun(variant, seed, out_dir / f"{variant}-s{seed}", config))
    return Ablation(out_dir, "top1" if base.task == "fgvc" else "mAP", variant_args, runs)  # the test metric


def run_ablation(config_path, seeds: Sequence[int], variants: Sequence[str], out_dir=None,
                 overrides: Sequence[str] = (), train: Optional[Callable] = None, log=print) -> dict:
    """Train every (variant, seed) not yet finished here, one after another, and return the
    ``ablation.json`` content (written after every run).

    ``train(config, run_dir, resume)`` trains one run (default: :func:`dcal.engine.trainer.train`
    in this process on the config's device).
    """
    ablation = plan_ablation(config_path, seeds, variants, out_dir, overrides)
    if train is None:
        train = _train_here(ablation.runs[0].config)
    for run in ablation.runs:
        if run.finished():
            log(f"ablation: {run.run_dir} is finished; not trained again")
            collect(ablation, upto=run)
            continue
        resume = run_folder.run_state(run.run_dir) != "absent"
        log(f"ablation: {'resuming' if resume else 'training'} {run.variant}, seed {run.seed} in {run.run_dir}")
        wall, cpu = time.perf_counter(), time.process_time()
        train(run.config, run.run_dir, resume)
        add_timing(run.run_dir, time.perf_counter() - wall, time.process_time() - cpu)
        collect(ablation, upto=run)
    return collect(ablation)


def collect(ablation: Ablation, pending: Optional[dict] = None, upto: Optional[AblationRun] = None,
            finished: Optional[set] = None) -> dict:
    """Gather the finished runs into ``ablation.json`` and ``ablation.md`` and return the content.

    ``pending``: ``{run folder name: {"state": "queued" | "failed", "job": ..., "error": ...}}`` of
    the runs that have not finished, listed in both files.  ``upto``: only the runs up to this one
    (an inline ablation writes its reports after every run).  ``finished``: the run folders already
    known to be finished (default: each run's checkpoint is read).
    """
    result = {"metric": ablation.metric, "variants": {}}
    for run in ablation.runs:
        entry = result["variants"].setdefault(run.variant, {"overrides": ablation.variants[run.variant], "runs": [],
                                                            "paper": paper_reference(run.config)})
        if (run.run_dir in finished) if finished is not None else run.finished():
            entry["runs"].append({"seed": run.seed, "run_dir": str(run.run_dir),
                                  "metrics": final_metrics(run.run_dir, run.config), **read_timing(run.run_dir)})
        _summarise(entry, ablation.metric)
        if run is upto:
            break
    if pending:
        result["pending"] = pending
    write_reports(result, ablation.out_dir)
    return result


def final_metrics(run_dir, config: Config) -> dict:
    """The last evaluation of ``run_dir`` (the last line of its ``metrics.jsonl``, at the final epoch)."""
    path = Path(run_dir) / "metrics.jsonl"
    records = read_records(path)
    final = [r for r in records if r.get("epoch") == config.train.epochs]
    if not final:
        raise run_folder.RunFolderError(f"{path} has no evaluation of the final epoch {config.train.epochs}")
    return final[-1]


def write_reports(result: dict, out_dir) -> None:
    """``ablation.json`` and ``ablation.md`` in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "ablation.json").write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    (out_dir / "ablation.md").write_text(markdown_table(result), encoding="utf-8")


def markdown_table(result: dict) -> str:
    """Per variant: mean ± std and every seed's value of the main metric, the paper's figure where
    the runs match one, the per-branch metrics (FGVC top-1; Re-ID mAP and Rank-1 when the runs
    report them) and the pointing game where the data has boxes; then the runs not finished."""
    metric = result["metric"]
    runs = [run for entry in result["variants"].values() for run in entry["runs"]]
    if metric == "top1":
        columns = [("top1_sa", "SA top-1"), ("top1_glca", "GLCA top-1")]
    else:
        columns = [("rank1", "Rank-1"), ("mAP_sa", "SA mAP"), ("mAP_glca", "GLCA mAP"),
                   ("rank1_sa", "SA Rank-1"), ("rank1_glca", "GLCA Rank-1")]
        columns = [c for c in columns if c[0] == "rank1" or any(c[0] in run["metrics"] for run in runs)]
    if any(run["metrics"].get("pointing_game") is not None for run in runs):
        columns.append(("pointing_game", "pointing game"))
    with_paper = any(entry.get("paper") for entry in result["variants"].values())
    name = "top-1 (%)" if metric == "top1" else "mAP (%)"
    lines = [f"| variant | {name}, mean ± std | per seed | " + ("paper | " if with_paper else "")
             + " | ".join(label for _, label in columns) + " |",
             "|---" * (3 + with_paper + len(columns)) + "|"]
    for variant, entry in result["variants"].items():
        values = [run["metrics"].get(metric) for run in entry["runs"]]
        per_seed = ", ".join(f"s{run['seed']}: {_fmt(v)}" for run, v in zip(entry["runs"], values))
        cells = [_mean_std([run["metrics"].get(key) for run in entry["runs"]]) for key, _ in columns]
        paper = [format_paper(entry.get("paper"), "top1" if metric == "top1" else "reid")] if with_paper else []
        lines.append(f"| {variant} | {_mean_std(values)} | {per_seed} | "
                     + " | ".join([*paper, *cells]) + " |")
    lines.append("")
    lines.append("std: sample standard deviation over the seeds. Per-branch columns: mean ± std."
                 + (" paper: the paper's figure for this dataset, backbone and variant (Re-ID: mAP / Rank-1)."
                    if with_paper else ""))
    for name, job in (result.get("pending") or {}).items():
        lines.append(f"- {name}: {job['state']}" + (f" ({job['job']})" if job.get("job") else "")
                     + (f": {job['error']}" if job.get("error") else ""))
    return "\n".join(lines) + "\n"


def format_paper(figures: Optional[dict], kind: str) -> str:
    """A paper figure for a table cell: ``84.6`` (FGVC top-1) or ``77.9 / 90.3`` (Re-ID mAP / Rank-1)."""
    if not figures:
        return "—"
    keys = PAPER_METRICS["fgvc" if kind == "top1" else "reid"]
    return " / ".join(f"{figures[k]:.1f}" for k in keys if k in figures) or "—"


def _summarise(entry: dict, metric: str) -> None:
    values = [run["metrics"][metric] for run in entry["runs"] if run["metrics"].get(metric) is not None]
    entry["mean"] = statistics.fmean(values) if values else None
    entry["std"] = statistics.stdev(values) if len(values) > 1 else 0.0


def _mean_std(values) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "—"
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.fmean(values):.2f} ± {std:.2f}"


def _fmt(value) -> str:
    return "—" if value is None else f"{value:.2f}"


def _train_here(base: Config) -> Callable:
    context = distributed.setup(base.train.device, base.train.threads)
    if context.distributed:
        raise ConfigError("dcal ablate runs its trainings one after another in one process; launch it without torchrun")

    def train_one(config: Config, run_dir: Path, resume: bool) -> None:
        trainer.train(config, run_dir, resume=resume, context=context)

    return train_one
