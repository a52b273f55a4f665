"""Price a grid before it runs: measure a few training steps per distinct backbone size on the target device,
then scale to every trial's epochs, steps and evaluated windows (``h2ot campaign estimate``).

A trial's device time, as :class:`h2ot_core.contracts.Usage` counts it, is per epoch ``steps x step time``
(training) plus ``evaluated windows x time per window`` (the test pass, flip included). Both rates are timed
here through the code trials run (:func:`~h2ot_core.engine.train.train_one_epoch`,
:func:`~h2ot_core.engine.evaluate.evaluate`, device synchronised) after a warm-up, on the trial's dataset,
batch, precision, thread count, recipe (an official epoch lists every clip twice) and protocol. The counts
come from the trial's own clip windows (the validation takes too, under ``best_on_val``).

Per distinct backbone size two configurations are timed: its dearest and its cheapest in FLOPs per clip (every
matmul, :func:`h2ot_core.cost.count_flops`), one when they are equal. A trial of that size is priced on the
straight line through the two (time = fixed part + FLOPs x rate), so pruned trials cost less without being
timed one by one, and the per-step work that does not shrink with the tokens (the optimiser, data, Python)
stays in the fixed part. Measurements are cached in ``$H2OT_CACHE/estimates.json`` by configuration, device,
precision, threads and torch version.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from h2ot_core.api import data_options, joint_weights, trial_model_config, validation_split
from h2ot_core.contracts import TrialSpec
from h2ot_core.cost import count_flops, example_input
from h2ot_core.data.base import PoseData, PoseSequence
from h2ot_core.data.loading import load_dataset
from h2ot_core.data.windows import ClipWindows
from h2ot_core.device import grad_scaler
from h2ot_core.engine.evaluate import evaluate
from h2ot_core.engine.losses import WeightedLoss
from h2ot_core.engine.recipes import OPTIMIZERS
from h2ot_core.engine.settings import TrainSettings
from h2ot_core.engine.train import train_one_epoch
from h2ot_core.engine.usage import Stopwatch, device_name
from h2ot_core.factory import build_model
from h2ot_core.names import dataset_info

#: training steps (and evaluation batches) timed per backbone size, after WARMUP untimed ones
STEPS = 8
WARMUP = 4
CACHE_FILE = "estimates.json"


@dataclass(frozen=True)
class Rates:
    """Measured on one device: seconds per training step (at the trial's batch) and per evaluated window."""

    step_s: float
    eval_window_s: float


@dataclass(frozen=True)
class TrialEstimate:
    """One trial's predicted device time: ``epochs x (steps x step_s + eval_windows x eval_window_s)``."""

    spec: TrialSpec
    size: str
    epochs: int
    steps_per_epoch: int
    eval_windows_per_epoch: int
    rates: Rates

    @property
    def device_seconds_train(self) -> float:
        return self.epochs * self.steps_per_epoch * self.rates.step_s

    @property
    def device_seconds_eval(self) -> float:
        return self.epochs * self.eval_windows_per_epoch * self.rates.eval_window_s

    @property
    def device_hours(self) -> float:
        return (self.device_seconds_train + self.device_seconds_eval) / 3600.0


@functools.cache
def _flops(config_json: str) -> float:
    config = json.loads(config_json)
    model = build_model(config).eval()
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        return count_flops(model, example_input(model))[1]


def spec_flops(spec: TrialSpec) -> float:
    """GFLOPs per clip of ``spec``'s model, every matmul counted (cached per configuration)."""
    return _flops(json.dumps(trial_model_config(spec), sort_keys=True))


def on_line(x: float, points: list[tuple[float, Rates]]) -> Rates:
    """The rates at FLOPs ``x`` on the line through ``points`` (``(flops, rates)``, one or two; never below
    the cheaper point's half, so a noisy pair cannot price a trial at nothing)."""
    (x0, r0), (x1, r1) = points[0], points[-1]
    if x1 == x0:
        return r0
    t = (x - x0) / (x1 - x0)
    step = r0.step_s + t * (r1.step_s - r0.step_s)
    window = r0.eval_window_s + t * (r1.eval_window_s - r0.eval_window_s)
    floor = min(r0, r1, key=lambda r: r.step_s)
    return Rates(max(step, floor.step_s / 2), max(window, floor.eval_window_s / 2))


def size_key(spec: TrialSpec, settings: TrainSettings) -> str:
    """What a measurement is shared by: the backbone and its size, clip length, pipeline, joints, batch."""
    return json.dumps({"backbone": spec.backbone, "model": dict(sorted(spec.model.items())), "frames": spec.frames,
                       "pipeline": spec.effective_pipeline, "joints": dataset_info(spec.dataset).num_joints,
                       "batch": settings.batch_size, "eval_batch": settings.eval_batch_size or settings.batch_size,
                       "flip_test": settings.flip_test}, sort_keys=True)


def cache_key(spec: TrialSpec, settings: TrainSettings, device: torch.device, threads: int) -> str:
    """A measurement's key: the configuration, its batch, dataset, device, precision, epoch recipe and protocol,
    threads, torch version."""
    return json.dumps({"config": trial_model_config(spec), "size": json.loads(size_key(spec, settings)),
                       "dataset": spec.dataset, "device": device_name(device), "precision": settings.precision,
                       "epoch": [settings.epoch_clips, settings.loss_frames, spec.protocol],
                       "threads": (settings.num_threads or threads) if device.type == "cpu" else None,
                       "torch": torch.__version__},
                      sort_keys=True)


class RateCache:
    """Measured :class:`Rates` in ``folder/estimates.json`` (read once, written after each new measurement)."""

    def __init__(self, folder: str | Path):
        self.path = Path(folder) / CACHE_FILE
        try:
            self.entries: dict[str, Any] = json.loads(self.path.read_text()) if self.path.is_file() else {}
        except (OSError, ValueError):
            self.entries = {}  # an unreadable cache is measured again, not an error

    def get(self, key: str) -> Rates | None:
        found = self.entries.get(key)
        return Rates(**found) if isinstance(found, dict) else None

    def put(self, key: str, rates: Rates) -> None:
        self.entries[key] = asdict(rates)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.entries, indent=1, sort_keys=True))
        tmp.replace(self.path)


def clip_windows(spec: TrialSpec, settings: TrainSettings, data: PoseData, pipeline: str
                 ) -> tuple[ClipWindows, list[ClipWindows]]:
    """The trial's training windows and the windows each epoch scores (test; and validation for
    ``best_on_val``), cut as :func:`h2ot_core.api.run_trial` cuts them."""
    train_stride, test_stride = settings.strides(spec.frames, pipeline)

    def cut(sequences: list[PoseSequence], stride: int) -> ClipWindows:
        return ClipWindows(sequences, spec.frames, stride=stride, pipeline=pipeline,  # type: ignore[arg-type]
                           joints_left=data.joints_left, joints_right=data.joints_right)

    train_seqs, scored = data.train, [cut(data.test, test_stride)]
    if spec.selection == "best_on_val":
        train_seqs, val_seqs = validation_split(data.train)
        scored.append(cut(val_seqs, test_stride))
    return cut(train_seqs, train_stride), scored


def measure_rates(spec: TrialSpec, settings: TrainSettings, data: PoseData, device: torch.device) -> Rates:
    """Time :data:`STEPS` training steps and :data:`STEPS` evaluation batches of ``spec`` on ``device`` (after
    :data:`WARMUP` of each), as a trial runs them."""
    torch.manual_seed(spec.seed)
    model = build_model(trial_model_config(spec)).to(device)
    optimizer = OPTIMIZERS[settings.optimizer](model.parameters(), settings.lr, settings.weight_decay)
    train, (test, *_) = clip_windows(spec, settings, data, model.pipeline)
    loss_fn = WeightedLoss(settings.loss, joint_weights(spec.dataset, data.num_joints))
    generator = torch.Generator().manual_seed(spec.seed)
    scaler = grad_scaler(device, settings.precision)

    def steps(n: int) -> int:
        return train_one_epoch(model, train, loss_fn, optimizer, batch_size=settings.batch_size, generator=generator,
                               flip=settings.flip_train, joints_left=data.joints_left,
                               joints_right=data.joints_right, max_windows=n * settings.batch_size,
                               precision=settings.precision, scaler=scaler, check_every=None,
                               epoch_clips=settings.epoch_clips, loss_frames=settings.loss_frames).steps

    eval_batch = settings.eval_batch_size or settings.batch_size

    def windows(n: int) -> int:
        evaluate(model, test, batch_size=eval_batch, flip=settings.flip_test, joints_left=data.joints_left,
                 joints_right=data.joints_right, root_joint=data.root_joint,
                 pck_joints=dataset_info(spec.dataset).pck_joints, max_windows=n * eval_batch,
                 precision=settings.precision, protocol=spec.protocol)
        return min(len(test), n * eval_batch)

    steps(WARMUP)
    with Stopwatch(device) as training:
        taken = steps(STEPS)
    windows(WARMUP)
    with Stopwatch(device) as evaluating:
        scored = windows(STEPS)
    return Rates(training.seconds / max(taken, 1), evaluating.seconds / max(scored, 1))


def estimate_trials(specs: Iterable[TrialSpec], settings_of: Callable[[TrialSpec], TrainSettings],
                    device: torch.device, *, cache: RateCache, threads: int,
                    data_dir_of: Callable[[str], str | Path | None] = lambda _: None,
                    on_measure: Callable[[TrialSpec], None] | None = None) -> list[TrialEstimate]:
    """Every trial's :class:`TrialEstimate`, timing the dearest and the cheapest configuration of each backbone
    size (or reading them from the cache).

    ``settings_of`` resolves a spec's training settings; ``data_dir_of(dataset)`` its data folder; ``threads``
    the CPU threads a trial gets (``torch.set_num_threads`` while timing on a CPU); ``on_measure(spec)`` is
    called before a configuration is timed (a progress line).
    """
    specs = list(specs)
    datasets: dict[str, PoseData] = {}

    def data_of(spec: TrialSpec) -> PoseData:
        data_id = json.dumps([spec.dataset, data_options(spec)], sort_keys=True, default=str)
        if data_id not in datasets:
            datasets[data_id] = load_dataset(spec.dataset, data_dir_of(spec.dataset), **data_options(spec))
        return datasets[data_id]

    def rates_of(spec: TrialSpec, settings: TrainSettings) -> Rates:
        key = cache_key(spec, settings, device, threads)
        found = cache.get(key)
        if found is None:
            if on_measure is not None:
                on_measure(spec)
            torch.set_num_threads(settings.num_threads or threads)
            found = measure_rates(spec, settings, data_of(spec), device)
            cache.put(key, found)
        return found

    settings = {s.trial_key: settings_of(s) for s in specs}
    groups: dict[str, list[TrialSpec]] = {}
    for spec in specs:
        groups.setdefault(size_key(spec, settings[spec.trial_key]), []).append(spec)
    found: dict[str, TrialEstimate] = {}
    before = torch.get_num_threads()
    try:
        for size, group in groups.items():
            by_flops = sorted(group, key=spec_flops)
            ends = [by_flops[0]] if spec_flops(by_flops[0]) == spec_flops(by_flops[-1]) else [by_flops[0], by_flops[-1]]
            points = [(spec_flops(s), rates_of(s, settings[s.trial_key])) for s in ends]
            for spec in group:
                s = settings[spec.trial_key]
                train, tests = clip_windows(spec, s, data_of(spec), trial_model_config(spec)["pipeline"])
                clips = len(train) * (2 if s.epoch_clips == "mirrored_copies" else 1)  # HoT's epoch: each clip twice
                seen = min(clips, s.max_train_windows or clips)
                scored = sum(min(len(t), s.max_test_windows or len(t)) for t in tests)
                found[spec.trial_key] = TrialEstimate(spec, size, s.epochs, math.ceil(seen / s.batch_size), scored,
                                                      on_line(spec_flops(spec), points))
    finally:
        torch.set_num_threads(before)
    return [found[s.trial_key] for s in specs]


def makespan_hours(hours: Iterable[float], devices: int) -> float:
    """Wall time of trials of ``hours`` on ``devices`` devices, one trial per device at a time, longest first
    (each next trial on the device free first)."""
    free = [0.0] * max(devices, 1)
    for h in sorted(hours, reverse=True):
        free[free.index(min(free))] += h
    return max(free)
