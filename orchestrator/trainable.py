"""The Ray Tune function trainable: one TrialSpec in, per-epoch reports out, one TrialResult back.

Runs on a worker. It only adapts :func:`h2ot_core.api.run_trial` to Tune: ``ray.tune.report`` with the
epoch's checkpoint directory, resume from ``tune.get_checkpoint()`` after a retry, and a final report
carrying the TrialResult JSON under :data:`RESULT_KEY` for the driver's sink. It never writes the
leaderboard or MLflow (the driver is the single writer).
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from typing import Any

from h2ot_core.contracts import ReportFn, TrialSpec

log = logging.getLogger(__name__)

#: key of the final report holding ``TrialResult.to_json()``
RESULT_KEY = "h2ot_result"
#: prefix of the metric copies an early-stopping scheduler watches
SCHEDULER_PREFIX = "sched_"
#: env var naming the datasets root on workers: one folder per dataset (``h36m/``, ``mpi_inf_3dhp/``)
DATA_DIR_ENV = "H2OT_DATA_DIR"


def trial_workdir(config: dict[str, Any], spec: TrialSpec) -> Path:
    """``<workdir_root>/<trial_key>`` when the launcher names a root, else Tune's trial directory.

    The launcher's root (``results/runs/trials``) outlives Ray's session folders, so the selected model's
    ``checkpoint_uri`` in the leaderboard stays valid; one folder per key also means a retried or resumed
    attempt finds its predecessor's files.
    """
    from ray import tune

    root = config.get("workdir_root")
    return Path(root) / spec.trial_key if root else Path(tune.get_context().get_trial_dir())


def data_dir(dataset: str) -> Path | None:
    """``$H2OT_DATA_DIR/<dataset>`` when that folder exists, else ``None``.

    ``None`` lets generated datasets (``synthetic``) use their per-seed cache, and makes a real dataset
    without files fail in its loader with a message naming the dataset.
    """
    root = os.environ.get(DATA_DIR_ENV)
    folder = Path(root) / dataset if root else None
    return folder if folder is not None and folder.is_dir() else None


def scheduler_key(metric_key: str) -> str:
    """The copy of a metric an early-stopping scheduler watches (absent from a trial's last epoch)."""
    return f"{SCHEDULER_PREFIX}{metric_key}"


def tune_reporter(spec: TrialSpec) -> ReportFn:
    """``run_trial``'s report callable: ``ray.tune.report`` with the epoch's checkpoint directory.

    Test metrics are also reported under :func:`scheduler_key` names, except in the last epoch: a scheduler
    (ASHA) stopping a trial there would throw away the finished trial's result, which comes after it.
    """
    from ray import tune

    from h2ot_core.engine.recipes import resolve_settings

    last_epoch = resolve_settings(spec.backbone, spec.train).epochs

    def report(metrics: dict[str, float], checkpoint_dir: str | None) -> None:
        flat = dict(metrics)
        if flat.get("epoch", last_epoch) < last_epoch:
            flat.update({scheduler_key(k): v for k, v in metrics.items() if k.startswith("test_")})
        checkpoint = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        tune.report(flat, checkpoint=checkpoint)

    return report


def _device() -> str:
    import ray

    if ray.get_gpu_ids():
        import torch

        if torch.cuda.is_available():
            return "cuda"
    return "cpu"


def _torch_threads() -> None:
    # A reused actor keeps the thread count of the previous trial; match the CPUs Tune gave this one.
    import torch
    from ray import tune

    cpus = tune.get_context().get_trial_resources().required_resources.get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))


def trainable(config: dict[str, Any]) -> None:
    """Tune entry point: ``config["spec"]`` is ``TrialSpec.to_dict()``; optional ``config["workdir_root"]``."""
    from ray import tune

    from h2ot_core.api import run_trial

    spec = TrialSpec.from_dict(config["spec"])
    workdir = trial_workdir(config, spec)
    workdir.mkdir(parents=True, exist_ok=True)
    # Written for operators (and the kill/retry test): which process trains this trial right now.
    (workdir / "worker.pid").write_text(str(os.getpid()))
    _torch_threads()
    checkpoint = tune.get_checkpoint()
    with checkpoint.as_directory() if checkpoint else contextlib.nullcontext(None) as resume_from:
        if resume_from:
            log.info("trial %s resumes from %s", spec.trial_key, resume_from)
        result = run_trial(spec, tune_reporter(spec), workdir=workdir, data_dir=data_dir(spec.dataset),
                           resume_from=resume_from, device=_device())
    final = dict(result.history[-1]) if result.history else {}
    tune.report({**{k: v for k, v in final.items() if isinstance(v, int | float)},
                 RESULT_KEY: result.to_json()})
