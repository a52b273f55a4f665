"""The walk of one trial: ``h2ot campaign run`` to the trial's leaderboard row, in one process, traced.

One trial of the tiny model (``search_spaces/_base/tiny_model.yaml``, one epoch) runs through the real command
(``orchestrator.cli``) with two stand-ins that keep it in this process: the Ray session yields the options
unchanged, and ``Tuner.fit`` becomes a loop that calls the real trainable with the config Tune would give it
and hands each ``tune.report`` to the real callbacks (leaderboard sink, progress) as Tune would. Everything
else is the real code: grid loading and validation, the leaderboard store (SQLite), MLflow (SQLite store),
``run_trial``, the checkpoint storage.

A profiler (``sys.setprofile``) records every call into a project module (``orchestrator``, ``h2ot_core``,
``results``) from another module, the command's own frames included. Inside the numerics (the training
loop, models, data: ``BOXED``) calls into ``h2ot_core`` are not followed; calls from there back into the
orchestrator or the leaderboard are. A call re-enters a module when the module was entered before and is not
on the stack now (it was left). A generator resumed is not a new call.

    python -m benchmarks.walk [--out benchmarks/results/walk.md] [--label after]

Prints the counts and the re-entering calls by function, and writes them to ``--out`` (the labelled row
replaces an earlier one of that label, others are kept: "before" and "after" side by side).
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import os
import re
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import FrameType, SimpleNamespace
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
PROJECT = ("orchestrator", "h2ot_core", "results")
#: the numerics: calls between these and the rest of h2ot_core are not part of the walk
BOXED = ("h2ot_core.engine", "h2ot_core.models", "h2ot_core.hourglass", "h2ot_core.data", "h2ot_core.pruning",
         "h2ot_core.recovering", "h2ot_core.layers", "h2ot_core.metrics", "h2ot_core.cost", "h2ot_core.device")
_GENERATOR = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR
TARGET = 25
#: functions the issue named as done more than once on the trial's path: every call counted (a cached
#: GridSpec.expand returns its first expansion; TrialSpec.trial_key hashes once per TrialSpec object)
WATCHED = ("orchestrator.grid.load_grid", "orchestrator.grid.GridSpec.expand", "h2ot_core.resolve.check_combination",
           "h2ot_core.resolve.resolve_settings", "orchestrator.cluster.preflight", "h2ot_core.contracts.TrialSpec.from_dict",
           "h2ot_core.contracts.TrialSpec.trial_key", "results.db.make_engine")
_IMPORTING = "<import>"


def _project(module: str) -> bool:
    return module.split(".")[0] in PROJECT


def _boxed(module: str) -> bool:
    return module.startswith(BOXED)


@dataclass
class Walk:
    """The cross-module calls of one traced run, one per call site: a loop calling the same function from the
    same function counts once, the same function called from two places twice."""

    calls: list[tuple[str, str, bool]] = field(default_factory=list)  # (module, function, re-entered)
    callers: set[str] = field(default_factory=set)  # modules that called into another module
    _stack: list[tuple[int, str, str]] = field(default_factory=list)  # (frame id, module, function)
    _entered: set[str] = field(default_factory=set)
    _resumed: set[int] = field(default_factory=set)
    _edges: set[tuple[str, str]] = field(default_factory=set)
    watched: Counter[str] = field(default_factory=Counter)

    def profile(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "call":
            module = frame.f_globals.get("__name__", "")
            code = frame.f_code
            if code.co_name in ("<module>", "__create_fn__") or code.co_names[:2] == ("__name__", "__module__"):
                # a module imported lazily, a class body, a dataclass being made, an annotation evaluated:
                # not the trial's path, and nothing called from inside it is
                self._stack.append((id(frame), _IMPORTING, ""))
                return
            if not _project(module):
                return
            function = f"{module}.{code.co_qualname}"
            if function in WATCHED:
                self.watched[function] += 1
            fresh = not (frame.f_code.co_flags & _GENERATOR and id(frame) in self._resumed)
            if frame.f_code.co_flags & _GENERATOR:
                self._resumed.add(id(frame))
            caller, caller_function = (self._stack[-1][1:] if self._stack else (None, ""))
            self._stack.append((id(frame), module, function))
            if not fresh or module == caller or (caller_function, function) in self._edges:
                return
            if any(m == _IMPORTING for _, m, _ in self._stack):
                return
            if caller is not None and _boxed(caller) and module.startswith("h2ot_core"):
                return
            self._edges.add((caller_function, function))
            if caller is not None:
                self.callers.add(caller)
            on_stack = {m for _, m, _ in self._stack[:-1]}
            reentered = module in self._entered and module not in on_stack
            self._entered.add(module)
            self.calls.append((module, frame.f_code.co_qualname, reentered))
        elif event == "return" and self._stack and self._stack[-1][0] == id(frame):
            self._stack.pop()

    @property
    def reentries(self) -> int:
        return sum(r for _, _, r in self.calls)

    @property
    def path_reentries(self) -> int:
        """Re-entering calls into modules that themselves call on (not into leaf helpers such as the vocabulary,
        the settings table or the registry, which every room may read)."""
        return sum(r for m, _, r in self.calls if m in self.callers)

    @property
    def modules(self) -> int:
        return len({m for m, _, _ in self.calls})


# -- keeping the campaign in this process -------------------------------------------------------------------
@contextlib.contextmanager
def _in_process_session(opts: Any) -> Iterator[tuple[Any, str]]:
    yield replace(opts, gpus_per_trial=0.0), "in this process (benchmarks.walk)"


def _in_process_fit(campaign: str, specs: list[Any], opts: Any, callbacks: list[Any], *, metric: str,
                    mode: str, **tune_options: Any) -> None:
    """What ``Tuner.fit`` does with ``specs``, one after another in this process (``tune_options``, such as a
    searcher, do not apply to one trial in a loop)."""
    import ray
    from ray import tune

    from h2ot_core.environment import storage_env
    from orchestrator import trainable as trainable_module

    for cb in callbacks:
        cb.setup()
    for i, spec in enumerate(specs):
        trial = SimpleNamespace(config={"spec": spec.to_dict(), "storage": str(opts.storage),
                                        "storage_env": storage_env()},
                                trial_id=f"walk{i:05d}", last_result={}, status="RUNNING")
        for cb in callbacks:
            cb.on_trial_start(iteration=i, trials=[trial], trial=trial)

        def report(metrics: dict[str, Any], checkpoint: Any = None, trial: Any = trial, i: int = i) -> None:
            trial.last_result = dict(metrics)
            for cb in callbacks:
                cb.on_trial_result(iteration=i, trials=[trial], trial=trial, result=dict(metrics))
                if checkpoint is not None:
                    cb.on_checkpoint(iteration=i, trials=[trial], trial=trial, checkpoint=checkpoint)

        resources = SimpleNamespace(required_resources={"CPU": opts.cpus_per_trial})
        context = SimpleNamespace(get_trial_resources=lambda r=resources: r)
        with _patched(tune, report=report, get_checkpoint=lambda: None, get_context=lambda c=context: c), \
                _patched(ray, get_gpu_ids=list):
            trainable_module.trainable(trial.config)
        trial.status = "TERMINATED"
        for cb in callbacks:
            cb.on_trial_complete(iteration=i, trials=[trial], trial=trial)
    for cb in callbacks:
        cb.on_experiment_end(trials=[])


@contextlib.contextmanager
def _patched(target: Any, **values: Any) -> Iterator[None]:
    saved = {k: getattr(target, k) for k in values}
    for k, v in values.items():
        setattr(target, k, v)
    try:
        yield
    finally:
        for k, v in saved.items():
            setattr(target, k, v)


def walk_one_trial(root: Path) -> tuple[Walk, float, int]:
    """Trace ``h2ot campaign run`` of a one-trial grid under ``root``; ``(walk, seconds, exit code)``."""
    from typer.testing import CliRunner

    from orchestrator import launcher
    from orchestrator.cli import app

    grid = root / "walk.yaml"
    grid.write_text(yaml.safe_dump({"name": "walk", "include": str(REPO / "search_spaces/_base/tiny_model.yaml"),
                                    "grid": {"pruner": "tps", "recoverer": "tri", "schedule": "1:9"}}))
    env = {"H2OT_RUNS_DIR": str(root / "runs"), "H2OT_DB_URL": f"sqlite:///{root / 'lb.sqlite'}",
           "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}", "H2OT_CACHE": str(root / "cache"),
           "H2OT_PROGRESS": "0"}
    walk = Walk()
    with _patched(launcher, ray_session=_in_process_session, _fit=_in_process_fit):
        started = time.perf_counter()
        sys.setprofile(walk.profile)
        try:
            res = CliRunner().invoke(app, ["campaign", "run", str(grid), "--retries", "0"], env=env)
        finally:
            sys.setprofile(None)
        seconds = time.perf_counter() - started
    if res.exit_code != 0:
        raise SystemExit(f"the campaign failed (exit {res.exit_code}):\n{res.output[-3000:]}\n{res.exception!r}")
    return walk, seconds, res.exit_code


def _leaderboard_row(root: Path) -> dict[str, Any]:
    from results.store import LeaderboardStore

    store = LeaderboardStore(f"sqlite:///{root / 'lb.sqlite'}")
    results, _ = store.campaign_results("walk")
    store.engine.dispose()
    (result,) = results
    return {"trial_key": result.trial_key, "status": str(result.status)}


def report(walk: Walk, label: str, row: dict[str, Any], out: Path, seconds: float) -> str:
    """The walk as text; its numbers join the runs kept in ``out``'s ``.json`` (same label replaced), and
    ``out`` is written from all of them."""
    by_function = Counter(f"{m}.{f}" for m, f, r in walk.calls if r)
    lines = [f"{label}: {len(walk.calls)} calls into {walk.modules} modules, {walk.reentries} re-entering a "
             f"module already left ({walk.path_reentries} not counting leaf helpers; target <= {TARGET}); "
             f"the row: {json.dumps(row)}; {seconds:.1f} s traced"]
    lines += [f"  {n:3d} x {name}" for name, n in by_function.most_common()]
    store = out.with_suffix(".json")
    runs: dict[str, Any] = json.loads(store.read_text()) if store.exists() else {}
    runs[label] = {"calls": len(walk.calls), "modules": walk.modules, "reentries": walk.reentries,
                   "path_reentries": walk.path_reentries, "top": by_function.most_common(6),
                   "watched": {f: walk.watched[f] for f in WATCHED}}
    out.parent.mkdir(parents=True, exist_ok=True)
    store.write_text(json.dumps(runs, indent=1) + "\n")
    out.write_text(markdown(runs))
    return "\n".join(lines)


def markdown(runs: dict[str, Any]) -> str:
    order = sorted(runs, key=_order)
    text = ["# The walk of one trial (`python -m benchmarks.walk`)", "",
            "`h2ot campaign run` of a one-trial grid to its leaderboard row, in one process, traced with "
            "`sys.setprofile` (see the module docstring for what counts). Target: at most "
            f"{TARGET} calls re-entering a module already left.", "",
            "| run | calls into project modules | modules | re-entering calls | of them into modules that call on "
            "| most re-entered |",
            "| --- | ---: | ---: | ---: | ---: | --- |"]
    for label in order:
        r = runs[label]
        top = ", ".join(f"{name} x{n}" for name, n in r["top"]) or "-"
        text.append(f"| {label} | {r['calls']} | {r['modules']} | {r['reentries']} | {r['path_reentries']} | {top} |")
    text += ["", "Calls of the functions the issue named (every call, driver and worker together):", "",
             "| run | " + " | ".join(f"`{_short(f)}`" for f in WATCHED) + " |",
             "| --- |" + " ---: |" * len(WATCHED)]
    text += [f"| {label} | " + " | ".join(str(runs[label]["watched"].get(f, 0)) for f in WATCHED) + " |"
             for label in order]
    return "\n".join(text) + "\n"


def _short(function: str) -> str:
    """``GridSpec.expand`` of ``orchestrator.grid.GridSpec.expand``, ``preflight`` of a module function."""
    parts = function.split(".")
    return ".".join(parts[-2:]) if parts[-2][:1].isupper() else parts[-1]


def _order(label: str) -> tuple[int, str]:
    return (0 if re.match(r"before", label) else 1, label)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "walk.md")
    parser.add_argument("--label", default="after")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    with tempfile.TemporaryDirectory(prefix="h2ot_walk_") as tmp:
        root = Path(tmp)
        walk, seconds, _ = walk_one_trial(root)
        row = _leaderboard_row(root)
    print(report(walk, args.label, row, args.out, seconds))


if __name__ == "__main__":
    main()
