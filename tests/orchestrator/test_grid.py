"""Grid files: expansion, include/profiles/exclude, trial_key stability, and one clear error per mistake."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from h2ot_core.errors import ConfigError
from h2ot_core.names import BACKBONE_INFO
from orchestrator.cli import app
from orchestrator.grid import load_grid

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted((REPO / "search_spaces").glob("*.yaml")) + sorted((REPO / "search_spaces" / "paper").glob("*.yaml"))
TINY = {"model": {"dim": 32, "depth": 2, "num_heads": 2}, "train": {"epochs": 1}}


def write(tmp_path: Path, name: str, doc: dict | str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False))
    return path


def test_smoke_grid_expands_to_the_product_of_its_axes():
    grid = load_grid(REPO / "search_spaces" / "smoke.yaml")
    specs = grid.expand()
    axes = grid.axes
    assert len(specs) == len(axes["pruner"]) * len(axes["recoverer"]) * len(axes["schedule"]) >= 4
    assert {(s.pruner, s.recoverer) for s in specs} == set(itertools.product(axes["pruner"], axes["recoverer"]))
    assert len({s.trial_key for s in specs}) == len(specs)
    assert all(s.dataset == "synthetic" and s.frames == 27 for s in specs)


def test_exclude_drops_matching_combinations(tmp_path):
    doc = {"grid": {"backbone": "mixste", "pruner": ["tpc", "tps"], "recoverer": ["tra", "tri"],
                    "schedule": ["1:9"], "frames": 27},
           "fixed": TINY, "exclude": [{"pruner": "tps", "recoverer": ["tra"]}]}
    specs = load_grid(write(tmp_path, "g.yaml", doc)).expand()
    assert len(specs) == 3
    assert ("tps", "tra") not in {(s.pruner, s.recoverer) for s in specs}


def test_unpruned_baseline_collapses_to_one_trial(tmp_path):
    doc = {"grid": {"backbone": "mixste", "pruner": ["none", "tpc"], "recoverer": ["tra", "tri"],
                    "layer": 1, "tokens": [5, 9], "frames": 27}, "fixed": TINY}
    specs = load_grid(write(tmp_path, "g.yaml", doc)).expand()
    baselines = [s for s in specs if s.pruner == "none"]
    assert len(baselines) == 1 and baselines[0].schedule == "" and baselines[0].recoverer == "none"
    assert sorted({s.schedule for s in specs if s.pruner == "tpc"}) == ["1:5", "1:9"]
    assert len(specs) == 1 + 2 * 2


def test_include_merges_and_later_files_override(tmp_path):
    write(tmp_path, "_base/b.yaml", {"metric": {"name": "p_mpjpe", "mode": "min"},
                                      "grid": {"backbone": "mixste", "frames": 27, "seed": [0, 1]},
                                      "fixed": {"model": {"dim": 32, "depth": 2, "num_heads": 2},
                                                "train": {"epochs": 3}}})
    path = write(tmp_path, "g.yaml", {"include": "_base/b.yaml", "grid": {"seed": [5]},
                                      "fixed": {"train": {"epochs": 1}}})
    grid = load_grid(path)
    specs = grid.expand()
    assert grid.metric == "p_mpjpe"
    assert [s.seed for s in specs] == [5]
    assert specs[0].train == {"epochs": 1} and specs[0].model["dim"] == 32


def test_include_cycle_is_refused(tmp_path):
    write(tmp_path, "a.yaml", {"include": "b.yaml", "grid": {"backbone": "mixste"}})
    write(tmp_path, "b.yaml", {"include": "a.yaml"})
    with pytest.raises(ConfigError, match="include cycle"):
        load_grid(tmp_path / "a.yaml")


def test_profiles_override_the_base(tmp_path):
    doc = {"grid": {"backbone": "mixste", "pruner": "tpc", "recoverer": "tra", "schedule": "3:81"},
           "profiles": {"tiny": {"grid": {"frames": 27, "schedule": "1:9"}, "fixed": TINY}}}
    path = write(tmp_path, "g.yaml", doc)
    base, tiny = load_grid(path).expand(), load_grid(path, "tiny").expand()
    assert base[0].frames == BACKBONE_INFO["mixste"].defaults["num_frames"] and base[0].schedule == "3:81"
    assert (tiny[0].frames, tiny[0].schedule, tiny[0].model["dim"]) == (27, "1:9", 32)
    assert base[0].trial_key != tiny[0].trial_key
    with pytest.raises(ConfigError, match="Did you mean: tiny"):
        load_grid(path, "tinyy")


def test_trial_key_is_stable_across_spellings(tmp_path):
    a = {"grid": {"backbone": ["mixste"], "pruner": ["tpc"], "recoverer": ["tra"], "schedule": ["1:9"],
                  "frames": [27], "seed": [0], "dataset": ["synthetic"]},
         "fixed": {"model": {"dim": 32, "depth": 2, "num_heads": 2}}}
    # Same trials: scalars for one-value axes, other key order, default dataset/seed left out, and a model
    # override equal to the official value (mlp_ratio) spelled out.
    b = {"fixed": {"model": {"num_heads": 2, "depth": 2, "dim": 32,
                             "mlp_ratio": BACKBONE_INFO["mixste"].defaults["mlp_ratio"]}},
         "grid": {"frames": 27, "schedule": "1:9", "recoverer": "tra", "pruner": "tpc", "backbone": "mixste"}}
    keys_a = [s.trial_key for s in load_grid(write(tmp_path, "a.yaml", a)).expand()]
    keys_b = [s.trial_key for s in load_grid(write(tmp_path, "b.yaml", b)).expand()]
    assert keys_a == keys_b
    assert keys_a == [s.trial_key for s in load_grid(tmp_path / "a.yaml").expand()]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
@pytest.mark.parametrize("profile", [None, "tiny", "paper"])
def test_shipped_grids_validate(path, profile):
    # The paper ablations come with tiny and paper profiles; smoke and demo are one fixed size.
    if profile is not None and path.parent.name != "paper":
        with pytest.raises(ConfigError, match="--profile"):
            load_grid(path, profile)
        return
    specs = load_grid(path, profile).expand()
    assert specs and len({s.trial_key for s in specs}) == len(specs)
    if profile == "tiny":
        assert all(s.dataset == "synthetic" and s.frames <= 27 for s in specs)


runner = CliRunner()

GOOD = {"grid": {"backbone": "mixste", "pruner": "tpc", "recoverer": "tra", "schedule": "1:9", "frames": 27},
        "fixed": TINY}


def _with(**grid) -> dict:
    return {**GOOD, "grid": {**GOOD["grid"], **grid}}


MALFORMED = {
    "yaml_syntax": ("grid:\n  backbone: [mixste\n  pruner: tpc\n", ["g.yaml:", "YAML syntax error"]),
    "unknown_top_key": ({**GOOD, "grdi": {}}, ["g.yaml", "grdi", "Did you mean: grid"]),
    "unknown_axis": (_with(prunner=["tpc"]), ["g.yaml", "grid.prunner", "Did you mean: pruner"]),
    "unknown_backbone": (_with(backbone=["mixtse"]), ["g.yaml", "grid.backbone", "'mixtse'", "Did you mean: mixste"]),
    "unknown_pruner": (_with(pruner=["tcp"]), ["g.yaml", "grid.pruner", "'tcp'", "tpc"]),
    "empty_axis": (_with(recoverer=[]), ["g.yaml", "grid.recoverer", "empty"]),
    "tokens_ge_frames": ({**GOOD, "grid": {"backbone": "mixste", "pruner": "tpc", "recoverer": "tra",
                                           "layer": 1, "tokens": [9, 27], "frames": 27}},
                         ["g.yaml", "grid.tokens", "27", "fewer than the frames (27)"]),
    "bad_schedule": (_with(schedule=["1-9"]), ["g.yaml", "grid.schedule", "'1-9'"]),
    "layer_beyond_depth": (_with(schedule=["5:9"]), ["g.yaml", "schedule=5:9", "depth"]),
    "seq2seq_pruned_without_recoverer": (_with(recoverer=["none"]), ["g.yaml", "recoverer=none", "needs a recoverer"]),
    "seq2frame_with_recoverer": (_with(pipeline=["seq2frame"]), ["g.yaml", "pipeline=seq2frame", "'tra'"]),
    "unknown_train_field": ({**GOOD, "fixed": {**TINY, "train": {"epoch": 1}}}, ["g.yaml", "train.epoch"]),
    "everything_excluded": ({**GOOD, "exclude": [{"pruner": "tpc"}]}, ["g.yaml", "no trials"]),
    # a name becomes folder names (Ray's run, a report) and an MLflow experiment
    "name_escapes": ({**GOOD, "name": "../../escape"}, ["g.yaml: name:", "'../../escape'", "is not a name"]),
    "name_with_a_slash": ({**GOOD, "name": "a/b"}, ["g.yaml: name:", "'a/b'"]),
    "name_with_a_space": ({**GOOD, "name": "my grid"}, ["g.yaml: name:", "'my grid'"]),
    "name_hidden": ({**GOOD, "name": ".hidden"}, ["g.yaml: name:", "'.hidden'"]),
    "name_not_text": ({**GOOD, "name": ["a"]}, ["g.yaml: name:", "['a']"]),
    "name_too_long": ({**GOOD, "name": "a" * 101}, ["g.yaml: name:", "101 characters", "at most 100"]),
    "zero_budget": ({**GOOD, "budget": {"max_device_hours": 0}}, ["g.yaml", "budget.max_device_hours", "0",
                                                                   "greater than 0"]),
    "negative_price": ({**GOOD, "budget": {"max_device_hours": 1, "price_per_device_hour": -2}},
                       ["g.yaml", "budget.price_per_device_hour", "-2"]),
    "unknown_budget_key": ({**GOOD, "budget": {"max_device_hour": 1}}, ["g.yaml", "budget.max_device_hour",
                                                                        "max_device_hours"]),
}


def test_device_budget_of_a_grid_and_of_a_search(tmp_path):
    grid = load_grid(write(tmp_path, "g.yaml", {**GOOD, "budget": {"max_device_hours": 2, "price_per_device_hour": 1.5}}))
    assert (grid.budget.max_device_hours, grid.budget.price_per_device_hour) == (2.0, 1.5)
    search = yaml.safe_load((Path(__file__).parents[2] / "search_spaces/search/smoke.yaml").read_text())
    search["include"] = str(Path(__file__).parents[2] / "search_spaces/_base/tiny_model.yaml")
    search["search"]["budget"]["max_device_hours"] = 0.5
    assert load_grid(write(tmp_path, "s.yaml", search)).budget.max_device_hours == 0.5
    search["search"]["budget"]["max_device_hours"] = 0
    with pytest.raises(ConfigError, match=r"s.yaml: search.budget.max_device_hours: 0 must be greater than 0"):
        load_grid(write(tmp_path, "s.yaml", search))


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_grid_is_one_clear_error_exit_2(tmp_path, case):
    doc, needles = MALFORMED[case]
    path = write(tmp_path, "g.yaml", doc)
    res = runner.invoke(app, ["campaign", "validate", str(path)])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), res.stderr
    message = " ".join(lines)
    for needle in needles:
        assert needle in message, (needle, message)
    assert "Traceback" not in res.output


def test_names_of_letters_digits_dot_dash_underscore_up_to_100_are_kept(tmp_path):
    for name in ("a", "token_sweep-tiny", "v1.2", "9lives", "x" * 100):
        assert load_grid(write(tmp_path, "g.yaml", {**GOOD, "name": name})).name == name


@pytest.mark.parametrize("name", ["../../escape", "/abs", "a b", "-dash", "x" * 101])
def test_a_name_option_that_is_not_a_name_is_refused_before_anything_runs(tmp_path, name):
    path = write(tmp_path, "g.yaml", GOOD)
    db = tmp_path / "lb.sqlite"
    res = runner.invoke(app, ["campaign", "run", str(path), "--name", name, "--dry-run", "--db-url", f"sqlite:///{db}"],
                        env={"H2OT_RUNS_DIR": str(tmp_path / "runs")})
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: --name:"), res.stderr
    assert repr(name)[:21] in lines[0]
    assert not db.exists() and not (tmp_path / "runs").exists()


def test_run_with_a_malformed_grid_starts_nothing(tmp_path):
    path = write(tmp_path, "g.yaml", _with(backbone=["mixtse"]))
    db = tmp_path / "lb.sqlite"
    res = runner.invoke(app, ["campaign", "run", str(path), "--db-url", f"sqlite:///{db}"],
                        env={"H2OT_RUNS_DIR": str(tmp_path / "runs")})
    assert res.exit_code == 2
    assert "grid.backbone" in res.stderr
    assert not db.exists() and not (tmp_path / "runs").exists()


def test_validate_prints_every_trial_key(tmp_path):
    path = REPO / "search_spaces" / "paper" / "token_sweep.yaml"
    res = runner.invoke(app, ["campaign", "validate", str(path), "--profile", "tiny"])
    assert res.exit_code == 0, res.output
    for spec in load_grid(path, "tiny").expand():
        assert spec.trial_key in res.stdout


def test_schedule_aliases_resolve_per_backbone(tmp_path):
    doc = {"grid": {"backbone": ["mixste", "motionagformer"], "pruner": "tps", "recoverer": "tri",
                    "schedule": ["hot", "h2ot"]}}
    specs = load_grid(write(tmp_path, "g.yaml", doc)).expand()
    got = {(s.backbone, s.schedule) for s in specs}
    assert got == {(b, getattr(BACKBONE_INFO[b], attr)) for b in ("mixste", "motionagformer")
                   for attr in ("hot_schedule", "h2ot_schedule")}


# what a command imports: run in a fresh interpreter, then read its sys.modules
_IMPORTS_OF = """import sys
from typer.testing import CliRunner
from orchestrator.cli import app
res = CliRunner().invoke(app, sys.argv[1:])
assert res.exit_code == 0, res.output
print(" ".join(m for m in ("torch", "ray", "mlflow", "optuna") if m in sys.modules))
"""


@pytest.mark.parametrize("args", [
    ["campaign", "validate", "search_spaces/smoke.yaml"],
    ["campaign", "validate", "search_spaces/search/smoke.yaml"],
    ["campaign", "validate", "search_spaces/paper/token_sweep.yaml", "--profile", "tiny"],
    ["campaign", "run", "search_spaces/smoke.yaml", "--dry-run"],
    ["campaign", "run", "search_spaces/search/smoke.yaml", "--dry-run"],
], ids=["grid", "search", "paper_grid", "grid_dry_run", "search_dry_run"])
def test_validate_and_dry_run_import_no_torch_no_ray_no_mlflow(tmp_path, args):
    env = {**os.environ, "H2OT_RUNS_DIR": str(tmp_path / "runs"), "H2OT_DB_URL": f"sqlite:///{tmp_path / 'lb.sqlite'}"}
    done = subprocess.run([sys.executable, "-c", _IMPORTS_OF, *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == [], f"{' '.join(args)} imported {done.stdout.strip()}"


@pytest.mark.parametrize(("grid", "profile", "trials"), [("demo.yaml", None, 7), ("smoke.yaml", None, 4),
                                                          ("paper/token_sweep.yaml", "tiny", 5)])
def test_seeds_replace_the_single_seed_an_include_sets(grid, profile, trials):
    """The shipped grids inherit `seed: [0]` (from _base/tiny_model.yaml or a profile of _base/campaign.yaml)."""
    args = ["campaign", "validate", str(REPO / "search_spaces" / grid), "--seeds", "3", "--format", "json"]
    res = runner.invoke(app, [*args, *(["--profile", profile] if profile else [])])
    assert res.exit_code == 0, res.output
    assert f"valid, {3 * trials} trials" in res.stderr
    one = load_grid(REPO / "search_spaces" / grid, profile)
    three = load_grid(REPO / "search_spaces" / grid, profile, seeds=3)
    assert sorted({s.seed for s in three.expand()}) == [0, 1, 2]
    # seed 0 is the very trial the grid alone runs: its key does not change
    assert {s.trial_key for s in one.expand()} == {s.trial_key for s in three.expand() if s.seed == 0}


def test_seeds_that_cannot_replace_the_seed_axis_name_the_file_that_set_it(tmp_path):
    base = write(tmp_path, "base/seeds.yaml", {"grid": {"seed": [0, 1]}})
    grid = write(tmp_path, "g.yaml", {"include": "base/seeds.yaml", **GOOD})
    res = runner.invoke(app, ["campaign", "validate", str(grid), "--seeds", "3"])
    assert res.exit_code == 2
    assert f"--seeds: 3 asked, but {base} sets grid.seed [0, 1] (2 seeds)" in res.stderr.replace("\n", "")
    # `seeds:` beside a seed axis in the very same file is a contradiction; `--seeds` overrides it
    same = write(tmp_path, "same.yaml", {**GOOD, "seeds": 2, "grid": {**GOOD["grid"], "seed": [4]}})
    res = runner.invoke(app, ["campaign", "validate", str(same)])
    assert res.exit_code == 2
    assert f"seeds: 2 asked, but {same} sets grid.seed [4] (in the same file)" in res.stderr.replace("\n", "")
    assert sorted(s.seed for s in load_grid(same, seeds=2).expand()) == [0, 1]
