"""``run_trial``: the single entry point from the orchestrator into h2ot_core.

A trial loads its dataset, builds clip windows and the hourglass model, counts the model's cost once,
then for every epoch trains, evaluates on the test split, checkpoints (``workdir/checkpoint/state.pt``) and
calls ``report``. The result carries the selected epoch's per-action metrics and a native checkpoint of its
weights (``workdir/model.pt``). Runs are deterministic for a seed on CPU, and a resumed run ends exactly
where an uninterrupted one does; it reports only the epochs after the checkpoint's, and its result records
that epoch in ``resumed_from_epoch``.
"""

from __future__ import annotations

import logging
import platform
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from h2ot_core.checkpoint import load_native, save_native
from h2ot_core.contracts import (
    EPOCH_EVAL_SECONDS,
    EPOCH_TRAIN_SECONDS,
    MetricRecord,
    ReportFn,
    TrialResult,
    TrialSpec,
    TrialStatus,
    Usage,
    metric_key,
)
from h2ot_core.cost import count_cost, latency_fields
from h2ot_core.data.base import PoseData, PoseSequence
from h2ot_core.data.loading import load_dataset
from h2ot_core.data.windows import ClipWindows
from h2ot_core.device import check_precision_on, grad_scaler, inference_model, resolve_device
from h2ot_core.engine.evaluate import Evaluation, evaluate
from h2ot_core.engine.losses import WeightedLoss
from h2ot_core.engine.recipes import OPTIMIZERS, resolve_settings
from h2ot_core.engine.settings import TrainSettings
from h2ot_core.engine.state import TrainState, load_state, save_state
from h2ot_core.engine.train import StepFn, train_one_epoch
from h2ot_core.engine.usage import Stopwatch, device_name, peak_memory, reset_peak_memory
from h2ot_core.errors import CheckpointError, DataError
from h2ot_core.factory import build_model, model_config
from h2ot_core.hourglass import HourglassModel
from h2ot_core.names import dataset_info

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"
MODEL_FILE = "model.pt"


def data_options(spec: TrialSpec) -> dict[str, Any]:
    """Loader options of ``spec``: ``spec.data``, plus the trial seed for a seeded dataset unless given."""
    options = dict(spec.data)
    if dataset_info(spec.dataset).seeded:
        options.setdefault("seed", spec.seed)
    return options


def joint_weights(dataset: str, num_joints: int) -> tuple[float, ...]:
    """WMPJPE joint weights in ``dataset``'s joint order (uniform for a skeleton without official ones)."""
    weights = dataset_info(dataset).joint_weights
    return weights if weights is not None and len(weights) == num_joints else (1.0,) * num_joints


def eval_windows(data: PoseData, model: HourglassModel, stride: int) -> ClipWindows:
    return ClipWindows(data.test, model.num_frames, stride=stride, pipeline=model.pipeline,
                       joints_left=data.joints_left, joints_right=data.joints_right)


def _evaluate(model: HourglassModel, windows: ClipWindows, data: PoseData, dataset: str, *, flip: bool,
              batch_size: int, max_windows: int | None, precision: str = "fp32",
              protocol: str = "real_frames") -> Evaluation:
    return evaluate(model, windows, batch_size=batch_size, flip=flip, joints_left=data.joints_left,
                    joints_right=data.joints_right, root_joint=data.root_joint, pck_joints=dataset_info(dataset).pck_joints,
                    max_windows=max_windows, precision=precision, protocol=protocol)


#: ``best_on_val`` holds out every ``VAL_EVERY``-th (subject, action) of the training split, all its cameras
VAL_EVERY = 10


def validation_split(sequences: list[PoseSequence]) -> tuple[list[PoseSequence], list[PoseSequence]]:
    """``(train, val)``: every :data:`VAL_EVERY`-th (subject, action) in sorted order goes to ``val`` with all
    its cameras (so no view of a held-out take is trained on); at least one take is held out."""
    takes = sorted({(s.subject, s.action) for s in sequences})
    held = set(takes[VAL_EVERY - 1 :: VAL_EVERY] or takes[-1:])
    if len(held) == len(takes):
        raise DataError(f"best_on_val: the training split has {len(takes)} take(s); a validation split needs 2 or more")
    return ([s for s in sequences if (s.subject, s.action) not in held],
            [s for s in sequences if (s.subject, s.action) in held])


@dataclass
class _Run:
    """The live objects of one trial."""

    spec: TrialSpec
    settings: TrainSettings
    data: PoseData
    model: HourglassModel
    config: dict[str, Any]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    generator: torch.Generator
    train: ClipWindows
    test: ClipWindows
    val: ClipWindows | None  # ``best_on_val``: the held-out training takes
    device: torch.device
    scaler: torch.amp.GradScaler  # fp16 loss scaling (a pass-through otherwise); saved with each epoch
    spent: float = 0.0  # device seconds of an epoch that is not in the history (it diverged)

    def state(self, epoch: int, history: list[dict[str, Any]], selected: dict[str, Any] | None) -> TrainState:
        cuda_rng = torch.cuda.get_rng_state_all() if self.device.type == "cuda" else []
        return TrainState(self.spec.trial_key, epoch, self.model.state_dict(), self.optimizer.state_dict(),
                          self.scheduler.state_dict(), torch.get_rng_state(), self.generator.get_state(),
                          history, selected, self.scaler.state_dict(), cuda_rng)

    def restore(self, state: TrainState, source: str) -> None:
        if state.trial_key != self.spec.trial_key:
            raise CheckpointError(f"{source}: the checkpoint belongs to trial {state.trial_key}, "
                                  f"not {self.spec.trial_key}")
        self.model.load_state_dict(state.model)
        self.optimizer.load_state_dict(state.optimizer)
        self.scheduler.load_state_dict(state.scheduler)
        torch.set_rng_state(state.torch_rng)
        self.generator.set_state(state.shuffle_rng)
        if state.scaler and self.scaler.is_enabled():
            self.scaler.load_state_dict(state.scaler)
        if state.cuda_rng and self.device.type == "cuda" and len(state.cuda_rng) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(state.cuda_rng)


def trial_model_config(spec: TrialSpec) -> dict[str, Any]:
    """The checked model configuration of ``spec`` (its clip length, its dataset's joints, its size overrides)."""
    model_kwargs = {"num_frames": spec.frames, "num_joints": dataset_info(spec.dataset).num_joints, **spec.model}
    return model_config(spec.backbone, spec.pruner, spec.recoverer, spec.schedule, pipeline=spec.pipeline,
                        **model_kwargs)


def _build(spec: TrialSpec, settings: TrainSettings, config: dict[str, Any], data_dir: str | Path | None,
           device: torch.device) -> _Run:
    data = load_dataset(spec.dataset, data_dir, **data_options(spec))
    if data.num_joints != config["model"]["num_joints"]:
        raise DataError(f"dataset {spec.dataset}: its loader gave {data.num_joints} joints per pose, its entry "
                        f"says {config['model']['num_joints']}")
    torch.manual_seed(spec.seed)
    model = build_model(config).to(device)
    optimizer = OPTIMIZERS[settings.optimizer](model.parameters(), settings.lr, settings.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, settings.lr_factor)
    train_stride, test_stride = settings.strides(spec.frames, model.pipeline)
    train_seqs, val = data.train, None
    if spec.selection == "best_on_val":
        train_seqs, val_seqs = validation_split(data.train)
        val = ClipWindows(val_seqs, spec.frames, stride=test_stride, pipeline=model.pipeline,
                          joints_left=data.joints_left, joints_right=data.joints_right)
    train = ClipWindows(train_seqs, spec.frames, stride=train_stride, pipeline=model.pipeline,
                        joints_left=data.joints_left, joints_right=data.joints_right)
    return _Run(spec, settings, data, model, config, optimizer, scheduler,
                torch.Generator().manual_seed(spec.seed), train, eval_windows(data, model, test_stride), val, device,
                grad_scaler(device, settings.precision))


def _epoch(run: _Run, loss_fn: WeightedLoss, epoch: int, on_step: StepFn | None = None
           ) -> tuple[dict[str, Any], Evaluation, Evaluation | None] | None:
    """Train and evaluate one epoch (test, and validation for ``best_on_val``); ``None`` when training diverged."""
    s = run.settings
    lr = run.optimizer.param_groups[0]["lr"]
    with Stopwatch(run.device) as training:
        stats = train_one_epoch(run.model, run.train, loss_fn, run.optimizer, batch_size=s.batch_size,
                                generator=run.generator, flip=s.flip_train, joints_left=run.data.joints_left,
                                joints_right=run.data.joints_right, max_windows=s.max_train_windows,
                                precision=s.precision, scaler=run.scaler, on_step=on_step,
                                epoch_clips=s.epoch_clips, loss_frames=s.loss_frames)
    if stats.diverged:
        run.spent += training.seconds
        return None
    run.scheduler.step()
    def score(windows: ClipWindows) -> Evaluation:
        return _evaluate(run.model, windows, run.data, run.spec.dataset, flip=s.flip_test,
                         batch_size=s.eval_batch_size or s.batch_size, max_windows=s.max_test_windows,
                         precision=s.precision, protocol=run.spec.protocol)

    with Stopwatch(run.device) as evaluating:
        ev = score(run.test)
        val = score(run.val) if run.val is not None else None
    row = {"epoch": epoch, metric_key("train", "loss"): stats.loss, "lr": lr, "train_windows": stats.windows,
           EPOCH_TRAIN_SECONDS: training.seconds, EPOCH_EVAL_SECONDS: evaluating.seconds,
           **ev.flat(), **(val.flat("val") if val is not None else {})}
    return row, ev, val


def _is_better(spec: TrialSpec, ev: Evaluation, selected: dict[str, Any] | None, val: Evaluation | None = None
               ) -> bool:
    """Whether this epoch replaces the selected one: always for ``last_epoch``; for ``best_on_test`` (on the
    test split) and ``best_on_val`` (on the held-out training takes) when it is better on the spec's selection
    metric, in that metric's direction."""
    if spec.selection == "last_epoch" or selected is None:
        return True
    metric = spec.selected_on
    judged = val if spec.selection == "best_on_val" and val is not None else ev
    now, best = judged.metrics[metric.name]["avg"], selected.get("judged", selected["metrics"])[metric.name]["avg"]
    return now < best if metric.lower_is_better else now > best


def _records(selected: Mapping[str, Any]) -> list[MetricRecord]:
    epoch = selected["epoch"]
    records = [MetricRecord(name, "test", value, action, epoch)
               for name, per_action in sorted(selected["metrics"].items())
               for action, value in per_action.items()]
    records.append(MetricRecord("loss", "train", selected["train_loss"], "avg", epoch))
    return records


def run_trial(
    spec: TrialSpec,
    report: ReportFn | None = None,
    *,
    workdir: str | Path,
    data_dir: str | Path | None = None,
    resume_from: str | Path | None = None,
    device: str | torch.device = "cpu",
    settings: TrainSettings | None = None,
    on_step: StepFn | None = None,
) -> TrialResult:
    """Train and evaluate ``spec``; see the module docstring.

    ``settings`` are the trial's resolved training settings when the caller has them already (else they are
    resolved from the spec here).

    ``device`` is ``auto`` (the accelerator this process was given, else the CPU), ``cpu``, ``cuda`` or
    ``cuda:N``; it is not part of the trial's identity. ``train.precision`` picks autocast (and fp16 loss
    scaling); the latency is timed after training, on ``device`` in that precision.

    A NaN or infinite training loss ends the trial ``failed`` with the error ``NaN at epoch N`` (:func:`nan_error`;
    no exception), keeping the last good epoch's metrics and weights; bad settings (an
    unknown precision, fp16 on a CPU, CUDA where there is none) raise :class:`~h2ot_core.errors.ConfigError`
    before anything is built; anything else propagates. ``on_step(steps_done, steps_in_epoch)`` is called
    after every training step (a progress bar; host-side counts, no device read).
    """
    settings = settings or resolve_settings(spec.backbone, spec.train, source=f"trial {spec.trial_key}")
    device = resolve_device(str(device))
    check_precision_on(device, settings.precision, f"trial {spec.trial_key}: train.precision")
    config = trial_model_config(spec)  # the one check of the combination, before anything is built
    threads_before = torch.get_num_threads()
    if settings.num_threads:
        torch.set_num_threads(settings.num_threads)
    try:
        return _run(spec, settings, config, report, Path(workdir), data_dir, resume_from, device, on_step)
    finally:
        torch.set_num_threads(threads_before)


def _run(spec: TrialSpec, settings: TrainSettings, config: dict[str, Any], report: ReportFn | None, workdir: Path,
         data_dir: str | Path | None, resume_from: str | Path | None, device: torch.device,
         on_step: StepFn | None = None) -> TrialResult:
    run = _build(spec, settings, config, data_dir, device)
    with torch.random.fork_rng(devices=[]):  # cost counting runs the pruners, which may draw noise
        # FLOPs now, on the CPU as the papers count them; the latency is timed after training (_result)
        cost = count_cost(run.model.cpu(), spec.frames)
    run.model.to(device)
    reset_peak_memory(device)
    loss_fn = WeightedLoss(settings.loss, joint_weights(spec.dataset, run.data.num_joints))
    ckpt_dir = workdir / CHECKPOINT_DIR
    history: list[dict[str, Any]] = []
    selected: dict[str, Any] | None = None
    start = 0
    last_state: str | Path | None = resume_from
    if resume_from is not None:
        state = load_state(resume_from)
        run.restore(state, str(resume_from))
        start, history, selected = state.epoch, list(state.history), state.selected
    status, error = TrialStatus.COMPLETE, None
    for epoch in range(start + 1, settings.epochs + 1):
        outcome = _epoch(run, loss_fn, epoch, on_step)
        if outcome is None:
            status, error = TrialStatus.FAILED, nan_error(epoch)
            break
        row, ev, val = outcome
        history.append(row)
        if _is_better(spec, ev, selected, val):
            selected = {"epoch": epoch, "metrics": ev.metrics, "train_loss": row[metric_key("train", "loss")],
                        "judged": (val or ev).metrics,
                        "model": ({k: v.detach().clone() for k, v in run.model.state_dict().items()}
                                  if spec.selection != "last_epoch" else None)}
        last_state = save_state(ckpt_dir, run.state(epoch, history, selected))
        log.info("trial %s epoch %d: %s", spec.trial_key, epoch, row)
        if report is not None:
            report(row, str(ckpt_dir))
    result = _result(run, status, cost, history, selected, workdir, last_state, device)
    result.error = error
    result.resumed_from_epoch = start  # the epoch this run continued after (0: it ran through)
    return result


def nan_error(epoch: int) -> str:
    """The error of a trial whose training loss turned NaN or infinite in ``epoch`` (1-based)."""
    return f"NaN at epoch {epoch}"


def _timed(run: _Run, cost: Any) -> Any:
    """``cost`` with the latency of the trained model on the trial's device and precision, at
    ``train.latency_batch`` (the leaderboard shows time saved beside FLOPs saved)."""
    s = run.settings
    with torch.random.fork_rng(devices=[]):
        timing = latency_fields(run.model, run.spec.frames, batch=s.latency_batch, repeats=s.latency_repeats,
                                precision=s.precision)
    return replace(cost, **timing)


def _result(run: _Run, status: TrialStatus, cost: Any, history: list[dict[str, Any]], selected: dict[str, Any] | None,
            workdir: Path, last_state: str | Path | None, device: torch.device) -> TrialResult:
    spec = run.spec
    checkpoint_uri = None
    if selected is not None:
        # The selected weights: the best epoch's copy, else the last completed epoch's (after a divergence
        # the live weights are the diverging ones, so they are read back from that epoch's checkpoint).
        weights = selected["model"]
        if weights is None and status != TrialStatus.COMPLETE and last_state is not None:
            weights = load_state(last_state).model
        if weights is not None:
            run.model.load_state_dict(weights)
        path = save_native(workdir / MODEL_FILE, run.model, run.config, trial_key=spec.trial_key,
                           spec=spec.to_dict(), epoch=selected["epoch"])
        checkpoint_uri = str(path.resolve())
        if run.settings.latency:
            cost = _timed(run, cost)
    provenance = {"torch": torch.__version__, "python": platform.python_version(), "device": str(device),
                  "precision": run.settings.precision,
                  "data_fingerprint": run.data.fingerprint, "num_threads": torch.get_num_threads()}
    return TrialResult(
        trial_key=spec.trial_key, spec=spec.to_dict(), status=status,
        metrics=_records(selected) if selected else [], cost=cost, epochs_run=len(history),
        best_epoch=selected["epoch"] if selected else None, selection=spec.selection,
        checkpoint_uri=checkpoint_uri, provenance=provenance, history=history, usage=_usage(run, history),
    )


def _usage(run: _Run, history: list[dict[str, Any]]) -> Usage:
    """The trial's device time from its history (earlier runs' epochs too, after a resume), plus the training
    time of an epoch that diverged, the peak memory and the device's name."""
    measured = {**peak_memory(run.device), "device_name": device_name(run.device)}
    found = Usage.from_history(history, **measured) or Usage(**measured)
    train = found.device_seconds_train + run.spent
    return replace(found, device_seconds_train=train, device_hours=(train + found.device_seconds_eval) / 3600.0)


def evaluate_checkpoint(
    checkpoint: str | Path,
    dataset: str,
    *,
    data_dir: str | Path | None = None,
    data_options: Mapping[str, Any] | None = None,
    flip: bool = True,
    batch_size: int = 8,
    max_windows: int | None = None,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    protocol: str = "real_frames",
    frames: str | None = None,
    stride: int | None = None,
) -> Evaluation:
    """Evaluate a native checkpoint on ``dataset``'s test split, on ``device`` (``auto``, ``cpu``,
    ``cuda[:N]``) in ``precision`` (checked before anything is loaded).

    ``protocol``: ``real_frames`` or ``official`` (padded frames scored too). ``frames``: ``all`` scores every
    output frame of windows tiling each sequence (a seq2seq model's default); ``centre`` scores the centre
    frame of a window centred on every ``stride``-th frame (a seq2frame model's default; HoT tests its
    seq2frame-trained MixSTE so). ``stride``: the window stride (default F for ``all``, 1 for ``centre``).
    """
    dev = resolve_device(str(device))
    check_precision_on(dev, precision)
    model, _ = load_native(checkpoint)
    model = inference_model(model.to(dev), precision)
    frames = frames or ("all" if model.pipeline == "seq2seq" else "centre")
    if frames == "all" and model.pipeline == "seq2frame":
        raise DataError(f"{checkpoint}: a seq2frame model outputs the centre frame only; use frames 'centre'")
    stride = stride or (model.num_frames if frames == "all" else 1)
    data = load_dataset(dataset, data_dir, **dict(data_options or {}))
    windows = ClipWindows(data.test, model.num_frames, stride=stride,
                          pipeline="seq2seq" if frames == "all" else "seq2frame",
                          joints_left=data.joints_left, joints_right=data.joints_right)
    return _evaluate(model, windows, data, dataset, flip=flip, batch_size=batch_size,
                     max_windows=max_windows, precision=precision, protocol=protocol)
