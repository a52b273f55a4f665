"""The Ray Tune function trainable: one TrialSpec in, per-epoch reports out, one TrialResult back.

Runs on a worker. It adapts :func:`h2ot_core.api.run_trial` to Tune and to the campaign storage
(:mod:`orchestrator.storage`): training writes to a local scratch folder; after each epoch the checkpoint is
published to ``<storage>/trials/<trial_key>/checkpoint/`` (files, then the manifest: :mod:`orchestrator.checkpoints`) and only then reported
with ``ray.tune.report``; at the end the model goes to ``<storage>/trials/<trial_key>/model.pt``, whose
storage URI becomes the result's ``checkpoint_uri``. A trial starts from ``tune.get_checkpoint()`` after a Tune
retry, else from the storage's checkpoint when a complete one exists (a new Tune run after a killed driver),
else from scratch. A final report carries the TrialResult JSON under :data:`RESULT_KEY` for the driver's
sink. It never writes the leaderboard or MLflow (the driver is the single writer).

Because an epoch is published before it is reported, and the sink logs an epoch to MLflow only once Tune has
registered its checkpoint, every epoch MLflow has is in the storage: a resumed run reports from the next
epoch on and never logs a step twice.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from h2ot_core.contracts import ReportFn, TrialResult, TrialSpec, TrialStatus, parse_metric_key
from h2ot_core.environment import SCRATCH_DIR
from h2ot_core.errors import CheckpointError, ConfigError, DataError, ShapeError
from h2ot_core.registry import UnknownNameError
from orchestrator.datasets import data_dir
from orchestrator.provenance import package_versions

log = logging.getLogger(__name__)

#: key of the final report holding ``TrialResult.to_json()``
RESULT_KEY = "h2ot_result"
#: prefix of the metric copies an early-stopping scheduler watches
SCHEDULER_PREFIX = "sched_"
#: errors a trial meets again on every attempt (its data, schedule, settings, checkpoint): the trial ends
#: ``failed`` with the error at once, where Tune would retry an exception (``--retries``: infrastructure,
#: a lost worker, storage that did not answer)
DETERMINISTIC_ERRORS = (ConfigError, DataError, CheckpointError, ShapeError, UnknownNameError)
#: the trial config key naming the campaign storage root (a URI; see :mod:`orchestrator.storage`)
STORAGE_KEY = "storage"


def scratch_dir(spec: TrialSpec) -> Path:
    """A fresh node-local folder for one attempt of a trial: ``$H2OT_SCRATCH_DIR`` or the temp folder."""
    root = Path(str(SCRATCH_DIR.value()))
    folder = root / f"{spec.trial_key}-{uuid.uuid4().hex[:8]}"
    folder.mkdir(parents=True)
    return folder


#: Tune trial id -> (its config's spec, parsed): the driver's callbacks ask on every event of every trial
_SPECS: dict[str, tuple[dict[str, Any], TrialSpec]] = {}


def trial_spec(trial: Any) -> TrialSpec:
    """The :class:`TrialSpec` of a Tune trial (``trial.config["spec"]``), parsed once per trial on the driver
    (a trial id met again with another spec, from another Tune run, is parsed again)."""
    raw = trial.config["spec"]
    known = _SPECS.get(trial.trial_id)
    if known is None or known[0] != raw:
        known = _SPECS[trial.trial_id] = (raw, TrialSpec.from_dict(raw))
    return known[1]


def storage_root(config: dict[str, Any]) -> str:
    """The campaign storage the launcher named (``config["storage"]``), else ``H2OT_STORAGE`` or the runs folder.

    The driver's endpoint and region (``config["storage_env"]``, never credentials) fill in what this node's
    environment lacks, so a worker on another node reaches the same S3-compatible server.
    """
    from orchestrator import storage

    for key, value in dict(config.get("storage_env") or {}).items():
        os.environ.setdefault(key, value)
    return storage.resolve(config.get(STORAGE_KEY))


def scheduler_key(metric_key: str) -> str:
    """The copy of a metric an early-stopping scheduler watches (absent from a trial's last epoch)."""
    return f"{SCHEDULER_PREFIX}{metric_key}"


def tune_reporter(spec: TrialSpec, checkpoint_uri: str | None = None, *, last_epoch: int) -> ReportFn:
    """``run_trial``'s report callable: ``ray.tune.report`` with the epoch's checkpoint directory.

    With ``checkpoint_uri`` (the trial's checkpoint folder in the campaign storage) the epoch's checkpoint is
    published there first (:func:`orchestrator.checkpoints.publish_checkpoint`); a failed upload fails the
    attempt (Tune retries it from its last checkpoint) rather than report an epoch the storage lacks.
    Test metrics are also reported under :func:`scheduler_key` names, except in ``last_epoch``: a scheduler
    (ASHA) stopping a trial there would throw away the finished trial's result, which comes after it.
    """
    from ray import tune

    from orchestrator import checkpoints

    def report(metrics: dict[str, float], checkpoint_dir: str | None) -> None:
        if checkpoint_dir and checkpoint_uri:
            checkpoints.publish_checkpoint(checkpoint_dir, checkpoint_uri, epoch=int(metrics["epoch"]),
                                       trial_key=spec.trial_key)
        flat = dict(metrics)
        if flat.get("epoch", last_epoch) < last_epoch:
            flat.update({scheduler_key(k): v for k, v in metrics.items()
                         if (parsed := parse_metric_key(k)) is not None and parsed[0] == "test"})
        checkpoint = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        tune.report(flat, checkpoint=checkpoint)

    return report


def cuda_index(gpu_id: str, visible: str | None) -> int:
    """The ``cuda:N`` index of Ray's GPU ``gpu_id`` in a process whose ``CUDA_VISIBLE_DEVICES`` is ``visible``.

    Ray normally sets ``CUDA_VISIBLE_DEVICES`` to the trial's GPUs, so the assigned one is found in that list;
    with the variable unset (``RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES``) Ray's id is the physical index.
    """
    listed = [v.strip() for v in (visible or "").split(",") if v.strip()]
    if gpu_id in listed:
        return listed.index(gpu_id)
    return int(gpu_id) if not listed and gpu_id.isdigit() else 0


def _device() -> str:
    """The GPU Ray assigned to this trial as ``cuda:N``, else ``cpu`` (``run_trial``'s ``device``)."""
    import ray

    gpu_ids = ray.get_gpu_ids()
    if gpu_ids:
        import torch

        if torch.cuda.is_available():
            return f"cuda:{cuda_index(str(gpu_ids[0]), os.environ.get('CUDA_VISIBLE_DEVICES'))}"
    return "cpu"


def _torch_threads() -> None:
    # A reused actor keeps the thread count of the previous trial; match the CPUs Tune gave this one.
    import torch
    from ray import tune

    cpus = tune.get_context().get_trial_resources().required_resources.get("CPU", 1)
    torch.set_num_threads(max(1, int(cpus)))


def _start_from(spec: TrialSpec, trial: Any, scratch: Path, stack: contextlib.ExitStack) -> Path | None:
    """The checkpoint folder this attempt starts from: Tune's (a retry), else the storage's, else ``None``."""
    from ray import tune

    from orchestrator import checkpoints

    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        resume_from = Path(stack.enter_context(checkpoint.as_directory()))
        log.info("trial %s resumes from Tune's checkpoint %s", spec.trial_key, resume_from)
        return resume_from
    found = checkpoints.fetch_checkpoint(trial.checkpoint, scratch / "resume")
    if found is None:
        return None
    log.info("trial %s resumes after epoch %d from %s", spec.trial_key, found[1], trial.checkpoint)
    return found[0]


def publish_result(result: TrialResult, trial: Any) -> TrialResult:
    """Upload the result's model to the trial's storage folder; the result then names that URI."""
    from orchestrator import storage

    if not result.checkpoint_uri:
        return result
    storage.put_file(result.checkpoint_uri, trial.model)
    return dataclasses.replace(result, checkpoint_uri=trial.model)


def trainable(config: dict[str, Any]) -> None:
    """Tune entry point: ``config["spec"]`` is ``TrialSpec.to_dict()``; optional ``config["storage"]`` (a URI)."""
    from h2ot_core.api import run_trial
    from h2ot_core.resolve import resolve_settings
    from orchestrator import checkpoints, storage

    spec = TrialSpec.from_dict(config["spec"])
    settings = resolve_settings(spec.backbone, spec.train, source=f"trial {spec.trial_key}")
    trial = checkpoints.TrialStorage(storage_root(config), spec.trial_key)
    # Written for operators (and the kill/retry tests): which process trains this trial right now.
    storage.put_bytes(str(os.getpid()).encode(), storage.join(trial.uri, "worker.pid"))
    _torch_threads()
    scratch = scratch_dir(spec)
    try:
        with contextlib.ExitStack() as stack:
            resume_from = _start_from(spec, trial, scratch, stack)
            try:
                result = run_trial(spec, tune_reporter(spec, trial.checkpoint, last_epoch=settings.epochs),
                                   workdir=scratch / "work", data_dir=data_dir(spec.dataset),
                                   resume_from=resume_from, device=_device(), settings=settings)
            except DETERMINISTIC_ERRORS as exc:  # the same again on every attempt: a result, never retried
                result = TrialResult(spec.trial_key, spec.to_dict(), TrialStatus.FAILED,
                                     error=f"{type(exc).__name__}: {exc}")
        result = publish_result(result, trial)
        # the worker's own versions of everything that changes results (numpy, ray, mlflow, ...), beside torch
        result.provenance = {**package_versions(), **result.provenance}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    _final_report(result)


def _final_report(result: TrialResult) -> None:
    from ray import tune

    final = dict(result.history[-1]) if result.history else {}
    tune.report({**{k: v for k, v in final.items() if isinstance(v, int | float)},
                 RESULT_KEY: result.to_json()})
