"""Campaign grids: a YAML file of registry names → a checked :class:`GridSpec` → a list of TrialSpecs.

A grid file (``search_spaces/*.yaml``)::

    name: smoke
    version: 1
    include: _base/tiny.yaml          # one path or a list, relative to this file; merged first
    metric: {name: mpjpe, mode: min}
    grid:                             # the product of these axes (a scalar is a one-value axis)
      backbone: [mixste]
      pruner: [tpc, tps]
      recoverer: [tra, tri]
      schedule: ["1:9"]               # or `tokens: [...]` with `layer:` (one value or an axis)
      frames: [27]
      dataset: [synthetic]
      seed: [0]
      pipeline: [seq2seq]             # optional: run a seq2seq backbone as seq2frame
    fixed: {model: {dim: 32}, train: {epochs: 1}, data: {minutes: 0.5}, selection: last_epoch}
                                      # best_on_test/best_on_val select each checkpoint on the grid's metric;
                                      # evaluate: {protocol: official|real_frames}, train: {recipe: official}
    exclude:                          # drop every combination matching all keys of one rule
      - {pruner: tps, recoverer: tra}
    profiles:                         # named overrides merged over the file with --profile NAME
      tiny: {fixed: {model: {dim: 32}}}

Merging is a deep merge of mappings (lists and scalars are replaced). Rules applied while expanding:

- every combination becomes its trial through :func:`h2ot_core.resolve.resolve_spec`, as ``h2ot train`` and a
  search's proposals do: ``pruner: none`` is the unpruned baseline (empty schedule, recoverer ``none``;
  duplicate combinations collapse into one trial, so one baseline per backbone/frames); ``schedule: hot`` is
  the backbone's official HoT schedule, ``schedule: h2ot`` its default hierarchical one; a left-out ``frames``
  is the backbone's own; model overrides equal to the backbone's official value are dropped, so the same
  model spelled two ways has one ``trial_key`` (and is trained once across campaigns).

Every name and every combination is checked here, before Ray starts; errors are :class:`ConfigError`
naming the file, the axis and the value.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from h2ot_core.config import deep_merge, read_yaml
from h2ot_core.contracts import PIPELINES, SELECTIONS, TrialSpec, metric_def, metric_key, parse_metric_key
from h2ot_core.errors import ConfigError
from h2ot_core.names import BACKBONES, DATASETS, PRUNERS, RECOVERERS
from h2ot_core.registry import Registry, unknown_message
from h2ot_core.resolve import AXIS_DEFAULTS, resolve_spec
from h2ot_core.vocabulary import check_name
from orchestrator.budget import DeviceBudget, check_device_budget
from orchestrator.grid_seeds import as_list, check_seed_override
from orchestrator.search_space import BUDGET_KEYS, SearchSpec, check_search

TOP_KEYS = frozenset({"name", "version", "description", "include", "metric", "grid", "search", "seeds", "fixed",
                      "exclude", "default_profile", "profiles", "budget"})
AXES = ("backbone", "pruner", "recoverer", "schedule", "tokens", "layer", "frames", "dataset", "seed",
        "pipeline")
FIXED_KEYS = frozenset({"model", "train", "data", "selection", "evaluate"})
MODES = ("min", "max")
#: axes whose values are registry names
NAME_AXES: dict[str, Registry[Any, Any]] = {
    "backbone": BACKBONES, "pruner": PRUNERS, "recoverer": RECOVERERS, "dataset": DATASETS,
}
INT_AXES = ("tokens", "layer", "frames", "seed")


def _load_merged(path: Path, stack: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The file with its ``include:`` chain merged underneath it (cycles refused)."""
    path = path.resolve()
    if path in stack:
        chain = " -> ".join(str(p) for p in (*stack, path))
        raise ConfigError(f"{stack[-1]}: include cycle: {chain}")
    doc = read_yaml(path, "grid file")
    unknown = set(doc) - TOP_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(f"{path}: {unknown_message('grid key', key, TOP_KEYS)}")
    includes = doc.pop("include", None) or []
    if isinstance(includes, str):
        includes = [includes]
    if not isinstance(includes, list) or not all(isinstance(i, str) for i in includes):
        raise ConfigError(f"{path}: include must be a path or a list of paths, got {includes!r}")
    merged: dict[str, Any] = {}
    for inc in includes:
        merged = deep_merge(merged, _load_merged(path.parent / inc, (*stack, path)))
    return deep_merge(merged, doc)


@dataclass(frozen=True)
class GridSpec:
    """A loaded, merged and checked grid.

    Attributes:
        name: campaign name (``name:`` or the file's stem).
        version: bump when the grid's meaning changes.
        path: the grid file.
        metric: the metric trials are ranked by (``mpjpe``); ``mode`` is ``min`` or ``max``.
        profile: the profile merged in, or ``None``.
        axes: axis name → list of values (the product is the grid).
        fixed: ``model``/``train``/``data``/``evaluate``/``selection`` settings shared by every trial.
        exclude: rules; a combination matching every key of one rule is dropped.
        resolved: the merged document (includes and profile applied), for provenance.
        search: the ``search:`` section of a search campaign (``None`` for a grid); its trials are
            proposed while it runs, so :meth:`expand` has none to list.
        budget: the device budget (``budget:``, or a search's ``search.budget``): :mod:`orchestrator.budget`.
    """

    name: str
    version: int
    path: Path
    metric: str
    mode: str
    profile: str | None
    axes: dict[str, list[Any]]
    fixed: dict[str, Any]
    exclude: list[dict[str, list[Any]]]
    resolved: dict[str, Any] = field(repr=False)
    search: SearchSpec | None = None
    budget: DeviceBudget = field(default_factory=DeviceBudget)

    @property
    def metric_key(self) -> str:
        """The flat report key of the grid's metric on the test split (``mpjpe`` -> ``test_mpjpe``)."""
        return self.metric if parse_metric_key(self.metric) else metric_key("test", self.metric)

    @property
    def resolved_yaml(self) -> str:
        return yaml.safe_dump(self.resolved, sort_keys=True)

    def combinations(self) -> list[dict[str, Any]]:
        """Every axis combination left after ``exclude`` (before normalisation), in file order."""
        names = list(self.axes)
        combos = [dict(zip(names, values, strict=True))
                  for values in itertools.product(*(self.axes[n] for n in names))]
        return [c for c in combos if not any(_matches(rule, c) for rule in self.exclude)]

    @functools.cached_property
    def specs(self) -> tuple[TrialSpec, ...]:
        """One checked :class:`TrialSpec` per distinct trial, in grid order (expanded once, when loaded)."""
        if self.search is not None:
            raise ConfigError(f"{self.path}: a search campaign proposes its trials as it runs; there is no "
                              f"fixed list to expand")
        specs: dict[str, TrialSpec] = {}
        for combo in self.combinations():
            spec = self.spec_for(combo)
            specs.setdefault(spec.trial_key, spec)
        if not specs:
            raise ConfigError(f"{self.path}: the grid has no trials left after `exclude`")
        return tuple(specs.values())

    def expand(self) -> list[TrialSpec]:
        """:attr:`specs` as a list."""
        return list(self.specs)

    def spec_for(self, combo: Mapping[str, Any]) -> TrialSpec:
        """The checked spec of one combination of axis values (plus optional ``train`` overrides) with the grid's
        ``fixed`` settings, its defaults filled in by :func:`h2ot_core.resolve.resolve_spec`; a
        ``best_on_test`` grid selects each trial's checkpoint on its own metric."""
        where = ", ".join(f"{k}={v}" for k, v in combo.items())
        intent = {**{k: v for k, v in combo.items() if k != "train"},
                  "model": dict(self.fixed.get("model", {})),
                  "train": {**dict(self.fixed.get("train", {})), **combo.get("train", {})},
                  "data": dict(self.fixed.get("data", {})), "evaluate": dict(self.fixed.get("evaluate", {})),
                  "selection": self.fixed.get("selection", "last_epoch"), "selection_metric": self.metric}
        return resolve_spec(intent, f"{self.path}: trial ({where})", prefix="grid.")


def _matches(rule: Mapping[str, list[Any]], combo: Mapping[str, Any]) -> bool:
    return all(key in combo and combo[key] in values for key, values in rule.items())


def _check_axes(path: Path, raw: Any) -> dict[str, list[Any]]:
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError(f"{path}: `grid:` must be a mapping of axes (backbone, pruner, ...), got {raw!r}")
    axes: dict[str, list[Any]] = {}
    for name, value in raw.items():
        if name not in AXES:
            raise ConfigError(f"{path}: grid.{name}: {unknown_message('axis', name, AXES)}")
        values = as_list(value)
        if not values:
            raise ConfigError(f"{path}: grid.{name}: the axis is empty; give at least one value")
        for v in values:
            _check_value(path, name, v)
        axes[name] = values
    if "backbone" not in axes:
        raise ConfigError(f"{path}: grid.backbone: missing; name at least one backbone ({', '.join(BACKBONES)})")
    if "schedule" in axes and ("tokens" in axes or "layer" in axes):
        raise ConfigError(f"{path}: grid: give either `schedule` or `tokens` with `layer`, not both")
    if ("tokens" in axes) != ("layer" in axes):
        raise ConfigError(f"{path}: grid: `tokens` and `layer` go together (schedule LAYER:TOKENS)")
    return {**axes, **{k: [v] for k, v in AXIS_DEFAULTS.items() if k not in axes}}


def _check_value(path: Path, axis: str, value: Any) -> None:
    if axis in NAME_AXES:
        if not isinstance(value, str) or value not in NAME_AXES[axis]:
            raise ConfigError(f"{path}: grid.{axis}: {unknown_message(axis, value, NAME_AXES[axis].names())}")
    elif axis in INT_AXES:
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if axis == "seed" else 1):
            raise ConfigError(f"{path}: grid.{axis}: {value!r} is not a positive integer")
    elif axis == "pipeline":
        if value not in PIPELINES:
            raise ConfigError(f"{path}: grid.pipeline: {unknown_message('pipeline', value, PIPELINES)}")
    elif axis == "schedule" and not isinstance(value, str):
        raise ConfigError(f"{path}: grid.schedule: {value!r} must be a string LAYER:TOKENS[,...] (quote it)")


def _check_fixed(path: Path, raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{path}: `fixed:` must be a mapping, got {raw!r}")
    for key, value in raw.items():
        if key not in FIXED_KEYS:
            raise ConfigError(f"{path}: fixed.{key}: {unknown_message('fixed setting', key, FIXED_KEYS)}")
        if key == "selection":
            if value not in SELECTIONS:
                raise ConfigError(f"{path}: fixed.selection: {unknown_message('selection', value, SELECTIONS)}")
        elif not isinstance(value, Mapping):
            raise ConfigError(f"{path}: fixed.{key}: must be a mapping of settings, got {value!r}")
    if "num_frames" in (raw.get("model") or {}):
        raise ConfigError(f"{path}: fixed.model.num_frames: set the clip length with the `frames` axis")
    if "pipeline" in (raw.get("model") or {}):
        raise ConfigError(f"{path}: fixed.model.pipeline: set the pipeline with the `pipeline` axis")
    return dict(raw)


def _check_exclude(path: Path, raw: Any, axes: Mapping[str, list[Any]]) -> list[dict[str, list[Any]]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError(f"{path}: `exclude:` must be a list of rules like {{pruner: none}}, got {raw!r}")
    rules = []
    for i, rule in enumerate(raw):
        if not isinstance(rule, Mapping) or not rule:
            raise ConfigError(f"{path}: exclude[{i}]: must be a non-empty mapping of axis values, got {rule!r}")
        for key in rule:
            if key not in axes:
                raise ConfigError(f"{path}: exclude[{i}].{key}: {unknown_message('grid axis', key, axes)}")
        rules.append({k: as_list(v) for k, v in rule.items()})
    return rules


def _check_metric(path: Path, raw: Any) -> tuple[str, str]:
    raw = raw or {}
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, Mapping) or set(raw) - {"name", "mode"}:
        raise ConfigError(f"{path}: metric: expected {{name: mpjpe, mode: min}}, got {raw!r}")
    name = raw.get("name", "mpjpe")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{path}: metric.name: {name!r} is not a metric name")
    try:
        lower = metric_def(name).lower_is_better
    except ConfigError as exc:
        raise ConfigError(f"{path}: metric.name: {exc}") from None
    mode = raw.get("mode", "min" if lower else "max")
    if mode not in MODES:
        raise ConfigError(f"{path}: metric.mode: {mode!r} must be min or max")
    return name, mode


def load_grid(path: str | Path, profile: str | None = None, *, seeds: int | None = None) -> GridSpec:
    """Load, merge (``include:``, then ``profiles[profile]``) and check a grid or search file.

    ``seeds`` (``--seeds N``) overrides the file's ``seeds: N``: seeds ``0..N-1`` of every configuration, in
    place of a single seed the grid (or an include) fixes (:func:`~orchestrator.grid_seeds.check_seed_override`).
    Every trial of a grid is expanded and checked once here, so an invalid combination fails now, not in
    Ray; a search's space, objectives and FLOPs cap are checked likewise.
    """
    path = Path(path)
    doc = _load_merged(path)
    profiles = doc.pop("profiles", None) or {}
    if not isinstance(profiles, Mapping):
        raise ConfigError(f"{path}: `profiles:` must map names to overrides, got {profiles!r}")
    # Without --profile, the grid's `default_profile:` runs (the paper grids: `paper`, the published setup).
    default_profile = doc.pop("default_profile", None)
    if default_profile is not None and default_profile not in profiles:
        raise ConfigError(f"{path}: default_profile: {unknown_message('profile', default_profile, profiles)}")
    applied = profile if profile is not None else default_profile
    if applied is not None:
        if not profiles:
            raise ConfigError(f"{path}: --profile: {applied!r} given, but the grid defines no profiles")
        if applied not in profiles:
            raise ConfigError(f"{path}: --profile: {unknown_message('profile', applied, profiles)}")
        override = profiles[applied] or {}
        if not isinstance(override, Mapping) or set(override) - (TOP_KEYS - {"include", "profiles", "default_profile"}):
            raise ConfigError(f"{path}: profiles.{applied}: must be a mapping of grid keys, got {override!r}")
        doc = deep_merge(doc, override)
    cli_seeds = seeds is not None
    seeds = _check_seeds(path, doc.get("seeds") if seeds is None else seeds, "--seeds" if seeds else "seeds")
    fixed = _check_fixed(path, doc.get("fixed"))
    search = None
    if doc.get("search") is not None:
        search = check_search(path, _search_with_grid_values(path, doc), fixed)
        if seeds is not None:
            search = replace(search, seeds=seeds)
        axes = {**{k: list(v) for k, v in search.choices.items()},
                **{k: [AXIS_DEFAULTS[k]] for k in ("dataset", "seed")}}
        doc.setdefault("metric", {"name": search.trained_objective, "mode": search.objectives.get(
            search.trained_objective or "", "min")})
    else:
        axes = _check_axes(path, doc.get("grid"))
        if seeds is not None:
            check_seed_override(path, applied, doc, seeds, "--seeds" if cli_seeds else "seeds")
            axes["seed"] = list(range(seeds))
    metric, mode = _check_metric(path, doc.get("metric"))
    version = doc.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int):
        raise ConfigError(f"{path}: version: {version!r} must be an integer")
    name = check_name(doc.get("name") or path.stem, f"{path}: name")
    spec = GridSpec(
        name=name, version=version, path=path, metric=metric, mode=mode, profile=profile, axes=axes,
        fixed=fixed, exclude=[] if search else _check_exclude(path, doc.get("exclude"), axes),
        resolved={**doc, "profile": profile, **({"default_profile": default_profile} if default_profile else {})},
        search=search, budget=_device_budget(path, doc),
    )
    if search is None:
        spec.expand()  # every trial checked now, and kept: the campaign reuses the expansion
    # a search's FLOPs cap is checked by `campaign run` before Ray starts (check_search_budget): counting
    # FLOPs builds models, and loading a grid (validate, --dry-run, the web pages) imports no torch
    return spec


def check_search_budget(grid: GridSpec) -> None:
    """Refuse a search whose FLOPs cap is below the cheapest schedule its space allows (imports torch)."""
    if grid.search is not None and grid.search.max_gflops is not None:
        from orchestrator.search_budget import check_budget

        check_budget(grid.search, grid.spec_for)


def _device_budget(path: Path, doc: Mapping[str, Any]) -> DeviceBudget:
    """``budget:`` of a grid; a search's ``search.budget`` device keys (either place, not both)."""
    top = check_device_budget(path, doc.get("budget"))
    search = doc.get("search")
    inner = search.get("budget") if isinstance(search, Mapping) else None
    if not isinstance(inner, Mapping):
        return top
    found = check_device_budget(path, inner, "search.budget", others=BUDGET_KEYS)
    if found != DeviceBudget() and top != DeviceBudget():
        raise ConfigError(f"{path}: budget: give the device budget once, in `budget:` or in `search.budget`")
    return found if found != DeviceBudget() else top


def _search_with_grid_values(path: Path, doc: Mapping[str, Any]) -> Any:
    """The ``search:`` section, with single values that a ``grid:`` (an included base file) fixes.

    A search file may include the same base files as a grid: their one-value ``backbone``, ``frames``,
    ``dataset`` and ``seed`` axes fill what the space leaves open; anything else there is refused.
    """
    grid, raw = doc.get("grid") or {}, doc["search"]
    if not isinstance(grid, Mapping) or not isinstance(raw, Mapping) or not isinstance(raw.get("space"), Mapping):
        return raw
    space = dict(raw["space"])
    for axis, value in grid.items():
        values = as_list(value)
        if axis not in ("backbone", "frames", "dataset", "seed") or len(values) != 1:
            raise ConfigError(f"{path}: grid.{axis}: a search file takes its axes from `search.space`; a "
                              f"`grid:` (e.g. from an include) may only fix one backbone, frames, dataset or seed")
        space.setdefault(axis, values[0])
    return {**raw, "space": space}


def _check_seeds(path: Path, raw: Any, where: str) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise ConfigError(f"{path}: {where}: {raw!r} must be a whole number of seeds, at least 1")
    return raw


def campaign_name(grid: GridSpec, override: str | None = None) -> str:
    """``--name`` if given, else the grid name suffixed by its profile (``smoke``, ``token_sweep-tiny``)."""
    if override:
        return check_name(override, "--name")
    name = f"{grid.name}-{grid.profile}" if grid.profile else grid.name
    return check_name(name, f"{grid.path}: name and profile")
