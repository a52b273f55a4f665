"""``h2ot train`` (one trial in-process, no Ray) and ``h2ot evaluate`` (a native checkpoint on a test split)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from h2ot_core.contracts import TrialSpec
from h2ot_core.errors import ConfigError
from orchestrator.console import err, out, user_errors

#: top-level trial fields and the types a YAML file may give them
_FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "backbone": str, "pruner": str, "recoverer": str, "schedule": (str, int), "frames": int, "dataset": str,
    "seed": int, "model": dict, "train": dict, "data": dict, "selection": str,
}
_SELECTIONS = ("last_epoch", "best_on_test")


def _read_trial_yaml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ConfigError(f"{path}: no such trial file")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a trial file must be a mapping of trial fields, got {type(raw).__name__}")
    return raw


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


def _merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for k, v in over.items():
        merged[k] = _merge(merged[k], v) if isinstance(v, Mapping) and isinstance(merged.get(k), Mapping) else v
    return merged


def build_spec(raw: Mapping[str, Any], source: str) -> TrialSpec:
    """A :class:`TrialSpec` from a mapping, with every field's type checked (errors name ``source``)."""
    unknown = sorted(set(raw) - set(_FIELD_TYPES) - {"trial_key"})
    if unknown:
        raise ConfigError(f"{source}: unknown trial field(s) {', '.join(unknown)}; known: {', '.join(_FIELD_TYPES)}")
    if "backbone" not in raw:
        raise ConfigError(f"{source}: field 'backbone' is required (give it in the file or with --backbone)")
    for key, value in raw.items():
        expected = _FIELD_TYPES.get(key)
        if expected and (not isinstance(value, expected) or isinstance(value, bool)):
            names = expected.__name__ if isinstance(expected, type) else " or ".join(t.__name__ for t in expected)
            raise ConfigError(f"{source}: field {key!r} must be a {names}, got {value!r}")
    if raw.get("selection", "last_epoch") not in _SELECTIONS:
        raise ConfigError(f"{source}: field 'selection' must be one of {', '.join(_SELECTIONS)}, "
                          f"got {raw['selection']!r}")
    fields = {k: v for k, v in raw.items() if k != "trial_key"}
    if "schedule" in fields:
        fields["schedule"] = str(fields["schedule"])
    return TrialSpec.from_dict(fields)


def metrics_table(metrics: Mapping[str, Mapping[str, float]], title: str) -> Table:
    """Rows = actions (``avg`` last), columns = metrics."""
    names = [n for n in ("mpjpe", "p_mpjpe", "n_mpjpe", "mpjve", "pck", "auc") if n in metrics]
    actions = [*sorted({a for n in names for a in metrics[n] if a != "avg"}), "avg"]
    table = Table("action", *names, title=title)
    for action in actions:
        table.add_row(action, *(f"{metrics[n][action]:.2f}" if action in metrics[n] else "-" for n in names))
    return table


@user_errors
def train(
    trial_yaml: Annotated[Path | None, typer.Argument(help="YAML file of TrialSpec fields (options override it)")]
    = None,
    backbone: Annotated[str | None, typer.Option(help="backbone name (h2ot ls)")] = None,
    pruner: Annotated[str | None, typer.Option(help="pruner name")] = None,
    recoverer: Annotated[str | None, typer.Option(help="recoverer name")] = None,
    schedule: Annotated[str | None, typer.Option(help="LAYER:TOKENS[,LAYER:TOKENS...]")] = None,
    frames: Annotated[int | None, typer.Option(help="clip length F")] = None,
    dataset: Annotated[str | None, typer.Option(help="dataset name")] = None,
    seed: Annotated[int | None, typer.Option(help="random seed")] = None,
    selection: Annotated[str | None, typer.Option(help="last_epoch or best_on_test")] = None,
    epochs: Annotated[int | None, typer.Option(help="epochs (default: the backbone's recipe)")] = None,
    batch_size: Annotated[int | None, typer.Option(help="clips per step")] = None,
    lr: Annotated[float | None, typer.Option(help="base learning rate")] = None,
    max_train_windows: Annotated[int | None, typer.Option(help="training windows per epoch (cap)")] = None,
    max_test_windows: Annotated[int | None, typer.Option(help="test windows per evaluation (cap)")] = None,
    dim: Annotated[int | None, typer.Option(help="channels C")] = None,
    depth: Annotated[int | None, typer.Option(help="blocks")] = None,
    heads: Annotated[int | None, typer.Option(help="attention heads")] = None,
    minutes: Annotated[float | None, typer.Option(help="synthetic data: minutes to generate")] = None,
    sets: Annotated[list[str] | None, typer.Option("--set", help="any field, e.g. --set train.flip_test=false")]
    = None,
    data_dir: Annotated[Path | None, typer.Option(help="dataset folder (default: the reader's)")] = None,
    workdir: Annotated[Path | None, typer.Option(help="checkpoints and model (default: runs/<trial_key>)")] = None,
    resume: Annotated[bool, typer.Option(help="continue from WORKDIR/checkpoint when it exists")] = False,
) -> None:
    """Train and evaluate one trial here (no Ray); progress on stderr, the final metrics table on stdout."""
    from h2ot_core.api import CHECKPOINT_DIR, run_trial
    from h2ot_core.engine.recipes import resolve_settings
    from h2ot_core.engine.state import STATE_FILE

    raw = _read_trial_yaml(trial_yaml) if trial_yaml else {}
    top = {"backbone": backbone, "pruner": pruner, "recoverer": recoverer, "schedule": schedule,
           "frames": frames, "dataset": dataset, "seed": seed, "selection": selection}
    nested = {"train": {"epochs": epochs, "batch_size": batch_size, "lr": lr, "max_train_windows": max_train_windows,
                        "max_test_windows": max_test_windows},
              "model": {"dim": dim, "depth": depth, "num_heads": heads}, "data": {"minutes": minutes}}
    overrides = {k: v for k, v in top.items() if v is not None}
    overrides.update({k: {kk: vv for kk, vv in d.items() if vv is not None} for k, d in nested.items()})
    raw = _merge(_merge(raw, overrides), _parse_sets(sets or []))
    source = str(trial_yaml or "command line")
    spec = build_spec(raw, source)
    total = resolve_settings(spec.backbone, spec.train, source=source).epochs
    workdir = workdir or Path("runs") / spec.trial_key
    resume_from = workdir / CHECKPOINT_DIR if resume and (workdir / CHECKPOINT_DIR / STATE_FILE).is_file() else None

    columns = (TextColumn("[bold]epoch"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
               TimeElapsedColumn())
    with Progress(*columns, console=err, transient=False) as progress:
        task = progress.add_task("train", total=total, info="")

        def report(metrics: dict[str, float], checkpoint_dir: str | None) -> None:
            info = f"loss {metrics['train_loss']:.4f}  test MPJPE {metrics.get('test_mpjpe', float('nan')):.2f} mm"
            progress.update(task, completed=metrics["epoch"], info=info)

        result = run_trial(spec, report, workdir=workdir, data_dir=data_dir, resume_from=resume_from)

    err.print(f"trial {result.trial_key}: {result.status}, {result.epochs_run} epoch(s), "
              f"selected epoch {result.best_epoch} ({result.selection}); model: {result.checkpoint_uri}")
    per_metric: dict[str, dict[str, float]] = {}
    for m in result.metrics:
        if m.split == "test":
            per_metric.setdefault(m.name, {})[m.action] = m.value
    out.print(metrics_table(per_metric, f"{spec.backbone} {spec.pruner}/{spec.recoverer} "
                                        f"{spec.schedule or '-'}: test metrics (mm, PCK/AUC %)"))
    train_loss = result.metric("train_loss", "train")
    if result.cost is not None and train_loss is not None:
        out.print(f"params {result.cost.params:,}  GFLOPs/clip {result.cost.gflops:.4f}  train loss {train_loss:.4f}")
    if result.status == "diverged":
        raise typer.Exit(1)


@user_errors
def evaluate(
    ckpt: Annotated[Path, typer.Argument(help="native checkpoint (h2ot train writes WORKDIR/model.pt)")],
    dataset: Annotated[str | None, typer.Option(help="dataset name (default: the one it was trained on)")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="dataset folder")] = None,
    flip: Annotated[bool, typer.Option(help="test-time flip augmentation")] = True,
    batch_size: Annotated[int, typer.Option(help="clips per forward pass")] = 8,
    sets: Annotated[list[str] | None, typer.Option("--set", help="dataset option, e.g. --set minutes=0.5")] = None,
) -> None:
    """Per-action MPJPE and P-MPJPE (plus N-MPJPE, MPJVE; PCK/AUC on MPI-INF-3DHP) of a native checkpoint."""
    from h2ot_core.api import data_options, evaluate_checkpoint
    from h2ot_core.checkpoint import read_native

    trained = read_native(ckpt).get("extra", {}).get("spec")
    options: dict[str, Any] = {}
    if trained and dataset in (None, trained["dataset"]):
        # Same dataset as in training: reuse its options (synthetic seed and length) unless overridden.
        options = data_options(TrialSpec.from_dict(trained))
        dataset = trained["dataset"]
    if dataset is None:
        raise ConfigError(f"{ckpt}: the checkpoint does not record its dataset; pass --dataset")
    options.update(_parse_sets(sets or []))
    ev = evaluate_checkpoint(ckpt, dataset, data_dir=data_dir, data_options=options, flip=flip,
                             batch_size=batch_size)
    err.print(f"{ckpt}: {ev.frames} frames of {dataset} (flip {'on' if flip else 'off'})")
    out.print(metrics_table(ev.metrics, f"{ckpt.name} on {dataset}: test metrics (mm, PCK/AUC %)"))


def register(app: typer.Typer) -> None:
    app.command("train")(train)
    app.command("evaluate")(evaluate)
