"""``h2ot train`` (one trial in-process, no Ray) and ``h2ot evaluate`` (a native checkpoint on a test split)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from h2ot_core.config import deep_merge, read_yaml
from h2ot_core.contracts import PROTOCOLS, TrialSpec, TrialStatus, metric_key
from h2ot_core.environment import runs_dir
from h2ot_core.errors import ConfigError
from h2ot_core.registry import unknown_message
from h2ot_core.resolve import resolve_spec
from orchestrator.clock import duration, eta, eta_text, interval_s, timestamp
from orchestrator.commands.core import DeviceOpt, PrecisionOpt, device_for
from orchestrator.commands.options import DbUrlOpt, FormatOpt, at_least_one
from orchestrator.console import err, out, print_rows, user_errors
from orchestrator.datasets import data_dir as default_data_dir


def _parse_sets(pairs: list[str]) -> dict[str, Any]:
    """``["train.lr=1e-3", "data.minutes=0.5"]`` → nested overrides (values parsed as YAML scalars)."""
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {pair!r}: expected KEY=VALUE, e.g. train.lr=0.001")
        node = result
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return result


def cli_spec(trial_yaml: Path | None, options: Mapping[str, Any], sets: list[str]) -> TrialSpec:
    """The trial file, overridden by the options that were given, then by ``--set`` pairs, resolved as a grid's
    combination is (:func:`h2ot_core.resolve.resolve_spec`: the backbone's own clip length, ``--schedule hot``).

    ``options`` is flat: top-level fields by name, nested settings as ``"train.epochs"``; ``None`` means
    not given.
    """
    raw = read_yaml(trial_yaml, "trial file") if trial_yaml else {}
    given: dict[str, Any] = {}
    for name, value in options.items():
        if value is not None:
            group, _, leaf = name.rpartition(".")
            (given.setdefault(group, {}) if group else given)[leaf] = value
    raw = deep_merge(deep_merge(raw, given), _parse_sets(sets))
    return resolve_spec(raw, str(trial_yaml or "command line"))


#: ``h2ot evaluate --frames``
FRAME_CHOICES = ("all", "centre")


def _check_choice(option: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{option}: {unknown_message(option.lstrip('-'), value, list(allowed))}")


def metrics_table(metrics: Mapping[str, Mapping[str, float]], title: str) -> Table:
    """Rows = actions (``avg`` last), columns = metrics."""
    names, rows = _metric_rows(metrics)
    table = Table("action", *names, title=title)
    for row in rows:
        table.add_row(row["action"], *(f"{row[n]:.2f}" if row[n] is not None else "-" for n in names))
    return table


def _metric_rows(metrics: Mapping[str, Mapping[str, float]]) -> tuple[list[str], list[dict[str, Any]]]:
    names = [n for n in ("mpjpe", "p_mpjpe", "n_mpjpe", "mpjve", "pck", "auc") if n in metrics]
    actions = [*sorted({a for n in names for a in metrics[n] if a != "avg"}), "avg"]
    return names, [{"action": a, **{n: metrics[n].get(a) for n in names}} for a in actions]


def print_metrics(metrics: Mapping[str, Mapping[str, float]], title: str, fmt: str) -> None:
    """The per-action metrics on stdout: :func:`metrics_table`, or rows in ``fmt`` (json, csv, markdown)."""
    if fmt == "table":
        out.print(metrics_table(metrics, title))
        return
    names, rows = _metric_rows(metrics)
    print_rows(rows, ["action", *names], fmt, title=title)


class TrainProgress:
    """``h2ot train``'s progress on stderr: in a terminal, a bar over every step of every epoch with its ETA;
    in a log, a timestamped line per epoch and every ``$H2OT_PROGRESS_INTERVAL_S`` seconds.

    ``step(done, per_epoch)`` is ``run_trial``'s ``on_step``; ``epoch(metrics)`` its per-epoch ``report``. The
    ETA counts the steps taken since the command started (a resumed run's epochs before it are not timed).
    """

    def __init__(self, epochs: int, console: Console, *, terminal: bool | None = None,
                 interval: float | None = None, clock: Any = time.monotonic, wall: Any = time.time):
        self.epochs, self.console, self.clock, self.wall = epochs, console, clock, wall
        self.terminal = console.is_terminal if terminal is None else terminal
        self.interval = interval_s() if interval is None else interval
        self.epoch_now = 1  # the epoch being trained (corrected by the first report of a resumed run)
        self.done = self.per_epoch = self.taken = 0
        self.info = ""
        self.started = self._last_line = clock()
        self.bar = Progress(TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"), BarColumn(),
                            TextColumn("step {task.fields[step]}/{task.fields[per_epoch]}"),
                            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), TextColumn("ETA"),
                            TimeRemainingColumn(), console=console, transient=False, disable=not self.terminal)
        self.task = self.bar.add_task("train", total=None, epoch=1, epochs=epochs, step=0, per_epoch="?", info="")

    def __enter__(self) -> TrainProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    @property
    def completed(self) -> int:
        """Steps of the whole run behind us (earlier epochs counted whole)."""
        return (self.epoch_now - 1) * self.per_epoch + self.done

    def eta(self) -> float | None:
        left = self.epochs * self.per_epoch - self.completed
        return eta(self.taken, self.taken + left, self.clock() - self.started)

    def step(self, done: int, per_epoch: int) -> None:
        self.done, self.per_epoch = done, per_epoch
        self.taken += 1
        self._update()
        if not self.terminal and self.clock() - self._last_line >= self.interval:
            self.line()

    def epoch(self, metrics: Mapping[str, float]) -> None:
        loss, mpjpe = metrics[metric_key("train", "loss")], metrics.get(metric_key("test", "mpjpe"), float("nan"))
        self.info = f"loss {loss:.4f}  test MPJPE {mpjpe:.2f} mm"
        ended = int(metrics["epoch"])
        if not self.terminal:
            self.line(f"epoch {ended}/{self.epochs} done: {self.info}")
        # the next epoch starts at step 0; after the last one the bar stays full
        self.epoch_now, self.done = (ended + 1, 0) if ended < self.epochs else (ended, self.per_epoch)
        self._update()

    def status(self) -> str:
        """``epoch 2/10 step 120/500 (24%); elapsed 1m02s, ETA 3m10s``."""
        total = self.epochs * self.per_epoch
        share = f" ({100 * self.completed / total:.0f}%)" if total else ""
        return (f"epoch {self.epoch_now}/{self.epochs} step {self.done}/{self.per_epoch or '?'}{share}; "
                f"elapsed {duration(self.clock() - self.started)}, ETA {eta_text(self.eta())}")

    def line(self, text: str | None = None) -> None:
        self.console.print(f"{timestamp(self.wall())} {text or self.status()}", markup=False, highlight=False)
        self._last_line = self.clock()

    def _update(self) -> None:
        total = self.epochs * self.per_epoch or None
        self.bar.update(self.task, total=total, completed=self.completed, epoch=self.epoch_now,
                        step=self.done, per_epoch=self.per_epoch or "?", info=self.info)


@user_errors
def train(
    trial_yaml: Annotated[Path | None, typer.Argument(help="YAML file of TrialSpec fields (options override it)")]
    = None,
    backbone: Annotated[str | None, typer.Option(help="backbone name (h2ot ls)")] = None,
    pruner: Annotated[str | None, typer.Option(help="pruner name")] = None,
    recoverer: Annotated[str | None, typer.Option(help="recoverer name")] = None,
    schedule: Annotated[str | None, typer.Option(
        help="LAYER:TOKENS[,LAYER:TOKENS...], or hot / h2ot: the backbone's HoT or hierarchical schedule")] = None,
    frames: Annotated[int | None, typer.Option(help="clip length F (default: the backbone's own)")] = None,
    dataset: Annotated[str | None, typer.Option(help="dataset name")] = None,
    seed: Annotated[int | None, typer.Option(help="random seed")] = None,
    selection: Annotated[str | None, typer.Option(help="last_epoch, best_on_val or best_on_test")] = None,
    recipe: Annotated[str | None, typer.Option(help="train.recipe: ours (default) or official (h2ot recipe show)")]
    = None,
    protocol: Annotated[str | None, typer.Option(help="evaluate.protocol: real_frames (default) or official")] = None,
    epochs: Annotated[int | None, typer.Option(help="epochs (default: the backbone's recipe)")] = None,
    batch_size: Annotated[int | None, typer.Option(help="clips per step")] = None,
    lr: Annotated[float | None, typer.Option(help="base learning rate")] = None,
    max_train_windows: Annotated[int | None, typer.Option(help="training windows per epoch (cap)")] = None,
    max_test_windows: Annotated[int | None, typer.Option(help="test windows per evaluation (cap)")] = None,
    dim: Annotated[int | None, typer.Option(help="channels C")] = None,
    depth: Annotated[int | None, typer.Option(help="blocks")] = None,
    heads: Annotated[int | None, typer.Option(help="attention heads")] = None,
    minutes: Annotated[float | None, typer.Option(help="synthetic data: minutes to generate")] = None,
    precision: Annotated[str | None, typer.Option(help="train.precision: fp32, bf16 (CPU or GPU) or fp16 (GPU); "
                                                       "bf16/fp16 trials have their own keys")] = None,
    device: DeviceOpt = "auto",
    sets: Annotated[list[str] | None, typer.Option("--set", help="any field, e.g. --set train.flip_test=false")]
    = None,
    data_dir: Annotated[Path | None, typer.Option(help="dataset folder (default: $H2OT_DATA_DIR/DATASET, else the reader's)")] = None,
    workdir: Annotated[Path | None, typer.Option(help="checkpoints and model (default: <runs dir>/trials/<trial_key>)")] = None,
    resume: Annotated[bool, typer.Option(help="continue from WORKDIR/checkpoint when it exists")] = False,
    campaign: Annotated[str, typer.Option(
        "--campaign", help="record the trial in this campaign of the leaderboard and MLflow experiment")] = "train",
    record: Annotated[bool, typer.Option(help="write the leaderboard row and MLflow run (--no-record: neither)")]
    = True,
    db_url: DbUrlOpt = None,
    fmt: FormatOpt = "table",
) -> None:
    """Train and evaluate one trial here (no Ray); progress on stderr, the final metrics table on stdout.

    The trial is recorded like a campaign's, by its trial_key: a leaderboard row in campaign `train`
    (--campaign) and an MLflow run in the experiment of that name.
    """
    from h2ot_core.api import CHECKPOINT_DIR, run_trial
    from h2ot_core.engine.state import STATE_FILE
    from h2ot_core.resolve import resolve_settings

    spec = cli_spec(trial_yaml, {
        "backbone": backbone, "pruner": pruner, "recoverer": recoverer, "schedule": schedule, "frames": frames,
        "dataset": dataset, "seed": seed, "selection": selection, "train.epochs": epochs,
        "train.batch_size": batch_size, "train.lr": lr, "train.max_train_windows": max_train_windows,
        "train.max_test_windows": max_test_windows, "model.dim": dim, "model.depth": depth,
        "model.num_heads": heads, "data.minutes": minutes, "train.precision": precision, "train.recipe": recipe,
        "evaluate.protocol": protocol}, sets or [])
    settings = resolve_settings(spec.backbone, spec.train, source=str(trial_yaml or "command line"))
    total = settings.epochs
    dev = device_for(device, settings.precision, "--precision" if precision else "train.precision")
    workdir = workdir or runs_dir() / "trials" / spec.trial_key
    resume_from = workdir / CHECKPOINT_DIR if resume and (workdir / CHECKPOINT_DIR / STATE_FILE).is_file() else None

    with TrainProgress(total, err) as progress:
        result = run_trial(spec, lambda metrics, _ckpt: progress.epoch(metrics), workdir=workdir,
                           data_dir=data_dir or default_data_dir(spec.dataset),
                           resume_from=resume_from, device=dev, on_step=progress.step)

    if record:
        from orchestrator.tracking.single import record_trial

        run_id = record_trial(spec, result, campaign=campaign, db_url=db_url)
        mlflow = f"MLflow run {run_id}" if run_id else "MLflow unreachable (h2ot campaign sync " + campaign + " later)"
        err.print(f"recorded: h2ot leaderboard --campaign {campaign} ({mlflow})", highlight=False, markup=False)
    why = f" ({result.error})" if result.error else ""
    err.print(f"trial {result.trial_key}: {result.status}{why}, {result.epochs_run} epoch(s), "
              f"selected epoch {result.best_epoch} ({result.selection}), protocol {spec.protocol}; "
              f"model: {result.checkpoint_uri}")
    per_metric: dict[str, dict[str, float]] = {}
    for m in result.metrics:
        if m.split == "test":
            per_metric.setdefault(m.name, {})[m.action] = m.value
    print_metrics(per_metric, f"{spec.backbone} {spec.pruner}/{spec.recoverer} {spec.schedule or '-'}: test "
                              f"metrics (mm, PCK/AUC %)", fmt)
    train_loss = result.metric("loss", "train")
    if result.cost is not None and train_loss is not None:
        (out if fmt == "table" else err).print(
            f"params {result.cost.params:,}  GFLOPs/clip {result.cost.gflops:.4f}  train loss {train_loss:.4f}")
    if result.status != TrialStatus.COMPLETE:
        raise typer.Exit(1)


@user_errors
def evaluate(
    ckpt: Annotated[str, typer.Argument(help="native checkpoint (h2ot train writes WORKDIR/model.pt), or a "
                                             "storage URI (s3://..., gs://...)")],
    dataset: Annotated[str | None, typer.Option(help="dataset name (default: the one it was trained on)")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="dataset folder (default: $H2OT_DATA_DIR/DATASET)")] = None,
    flip: Annotated[bool, typer.Option(help="test-time flip augmentation")] = True,
    batch_size: Annotated[int, typer.Option(callback=at_least_one, help="clips per forward pass")] = 8,
    sets: Annotated[list[str] | None, typer.Option("--set", help="dataset option, e.g. --set minutes=0.5")] = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "fp32",
    protocol: Annotated[str | None, typer.Option(
        help="real_frames (padded frames masked) or official (padded frames scored too, as HoT's test and the "
             "published numbers); default: the protocol the checkpoint's trial was scored with, else real_frames")]
    = None,
    frames: Annotated[str | None, typer.Option(help="all: every output frame of windows tiling each sequence (seq2seq "
                                                    "default); centre: the centre frame of a window on every "
                                                    "--stride-th frame (seq2frame default)")] = None,
    stride: Annotated[int | None, typer.Option(callback=at_least_one, help="window stride in frames (default: F "
                                                                           "for --frames all, 1 for centre)")] = None,
    fmt: FormatOpt = "table",
) -> None:
    """Per-action MPJPE and P-MPJPE (plus N-MPJPE, MPJVE; PCK/AUC on MPI-INF-3DHP) of a native checkpoint."""
    if protocol is not None:
        _check_choice("--protocol", protocol, PROTOCOLS)
    if frames is not None:
        _check_choice("--frames", frames, FRAME_CHOICES)
    dev = device_for(device, precision)
    from h2ot_core.api import data_options, evaluate_checkpoint
    from h2ot_core.checkpoint import read_native
    from orchestrator.storage import local_copy

    with local_copy(ckpt, "checkpoint") as path:  # a storage URI: a temporary download
        trained = read_native(path).get("extra", {}).get("spec")
        protocol = protocol or (TrialSpec.from_dict(trained).protocol if trained else "real_frames")
        options: dict[str, Any] = {}
        if trained and dataset in (None, trained["dataset"]):
            # Same dataset as in training: reuse its options (synthetic seed and length) unless overridden.
            options = data_options(TrialSpec.from_dict(trained))
            dataset = trained["dataset"]
        if dataset is None:
            raise ConfigError(f"{ckpt}: the checkpoint does not record its dataset; pass --dataset")
        options.update(_parse_sets(sets or []))
        ev = evaluate_checkpoint(path, dataset, data_dir=data_dir or default_data_dir(dataset), data_options=options,
                                 flip=flip, batch_size=batch_size, device=dev, precision=precision,
                                 protocol=protocol, frames=frames, stride=stride)
    err.print(f"{ckpt}: {ev.frames} frames of {dataset} (protocol {protocol}, flip {'on' if flip else 'off'}, "
              f"{precision} on {dev})")
    print_metrics(ev.metrics, f"{path.name} on {dataset}: test metrics (mm, PCK/AUC %)", fmt)


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("evaluate")(evaluate)
