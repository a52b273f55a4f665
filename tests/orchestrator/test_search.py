"""Search campaigns: valid-by-construction schedules, free rejections, bad input before Ray, the smoke
search end to end (leaderboard, MLflow, FLOPs cap), reuse of trained configurations, and a killed driver
resumed without re-sampling what the study already holds.
"""

from __future__ import annotations

import time
from pathlib import Path

import optuna
import pytest
import yaml
from mlflow.tracking import MlflowClient
from testkit import REPO, TINY, finish, kill, rows, start, wait_for
from typer.testing import CliRunner

from h2ot_core.errors import ConfigError
from h2ot_core.factory import check_combination
from orchestrator.cli import app
from orchestrator.grid import load_grid
from orchestrator.search import KEYS, REJECTED, SPEC, spec_gflops, study_url

SMOKE = REPO / "search_spaces" / "search" / "smoke.yaml"
runner = CliRunner()


def search_file(tmp_path: Path, name: str = "s", fixed: dict | None = None, **search: object) -> Path:
    base = {"space": {"backbone": "mixste", "pruner": ["tpc", "tps"], "recoverer": ["tra", "tri"],
                      "layer": [1], "tokens": {"low": 3, "high": 13}},
            "objectives": {"mpjpe": "min", "gflops": "min"}, "budget": {"trials": 2}}
    for key, value in search.items():
        base[key] = {**base[key], **value} if key in ("space", "budget") else value
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "include": str(TINY), "search": base, "fixed": fixed or {}}))
    return path


# --- the space and bad input (no Ray) ----------------------------------------------------------------
def test_every_sample_is_a_valid_schedule(tmp_path):
    path = search_file(tmp_path, fixed={"model": {"depth": 6}},
                       space={"stages": [1, 2, 3], "layer": {"low": 1, "high": 5}, "tokens": [2, 3, 5, 8, 13, 21]})
    grid = load_grid(path)
    study = optuna.create_study(directions=["minimize", "minimize"],
                                sampler=optuna.samplers.RandomSampler(seed=0))
    stages_seen = set()
    for _ in range(300):
        combo = {"dataset": "synthetic", "seed": 0, **grid.search.sample(study.ask())}
        spec = grid.spec_for(combo)  # raises on any invalid schedule
        check_combination(spec.backbone, spec.pruner, spec.recoverer, spec.schedule, model=dict(spec.model))
        stages_seen.add(spec.schedule.count(",") + 1)
    assert stages_seen == {1, 2, 3}


@pytest.mark.parametrize(("search", "needles"), [
    ({"space": {"layer": [5, 6]}}, ["search.space", "no valid schedule", "1..1"]),
    ({"space": {"stages": [2], "layer": [1]}}, ["search.space", "2 stage(s)"]),
    ({"space": {"tokens": [30, 40]}}, ["search.space", "below the 27 frames"]),
    ({"objectives": {"mpjep": "min"}}, ["search.objectives.mpjep", "Did you mean: mpjpe"]),
    ({"objectives": {"gflops": "min"}}, ["search.objectives", "accuracy objective"]),
    ({"budget": {"trials": 0}}, ["search.budget.trials", "0", "greater than 0"]),
    ({"sampler": {"name": "cmaes"}}, ["search.sampler.name", "'cmaes'", "nsga2"]),
    ({"space": {"pruner": ["tcp"]}}, ["search.space.pruner", "Did you mean: tpc"]),
    ({"space": {"width": [1]}}, ["search.space.width", "Unknown search space key"]),
])
def test_bad_search_is_one_clear_error_naming_file_and_field(tmp_path, search, needles):
    path = search_file(tmp_path, **search)
    with pytest.raises(ConfigError) as info:
        load_grid(path)
    message = str(info.value)
    assert message.startswith(str(path)), message
    for needle in needles:
        assert needle in message, message
    res = runner.invoke(app, ["campaign", "run", str(path), "--db-url", f"sqlite:///{tmp_path / 'lb.sqlite'}"])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert not (tmp_path / "lb.sqlite").exists()  # refused before anything was written


def test_a_cap_below_the_cheapest_schedule_is_refused_before_anything_is_written(tmp_path):
    path = search_file(tmp_path, budget={"max_gflops": 0.001})
    load_grid(path)  # loading counts no FLOPs (no torch): `campaign run` checks the cap
    res = runner.invoke(app, ["campaign", "run", str(path), "--db-url", f"sqlite:///{tmp_path / 'lb.sqlite'}"],
                        env={"H2OT_RUNS_DIR": str(tmp_path / "runs")})
    assert res.exit_code == 2, res.output
    (line,) = res.stderr.strip().splitlines()
    for needle in (str(path), "search.budget.max_gflops", "0.001", "cheapest schedule"):
        assert needle in line, line
    assert not (tmp_path / "lb.sqlite").exists() and not (tmp_path / "runs").exists()


def test_cap_rejects_for_free_and_sampler_state_persists(tmp_path):
    grid = load_grid(SMOKE)
    from orchestrator.search import _propose, open_study
    from results.store import LeaderboardStore

    url = f"sqlite:///{tmp_path / 'lb.sqlite'}"
    study = open_study(grid.search, "cap", LeaderboardStore(url))
    counts = {"invalid": 0, "over_budget": 0}
    proposals = [_propose(grid.search, grid, study, counts) for _ in range(8)]
    assert all(spec_gflops(s) <= grid.search.max_gflops for p in proposals for s in p.specs)
    assert counts["over_budget"] > 0 and counts["invalid"] == 0
    rejected = [t for t in study.trials if REJECTED in t.user_attrs]
    assert len(rejected) == counts["over_budget"]
    assert all(t.state == optuna.trial.TrialState.FAIL for t in rejected)
    # the study lives beside the leaderboard and is found again by name
    again = optuna.load_study(study_name="cap", storage=study_url(url))
    assert len(again.trials) == len(study.trials)


# --- end to end on a local Ray --------------------------------------------------------------------------
def _study(env: dict[str, str], name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=study_url(env["H2OT_DB_URL"]))


def _proposals(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.trials if SPEC in t.user_attrs]


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.timeout(900)
def test_smoke_search_end_to_end(env):
    rc, _, err = finish(start([str(SMOKE)], env), timeout=600)
    assert rc == 0, err[-3000:]
    grid = load_grid(SMOKE)
    study = _study(env, "search_smoke")
    proposals = _proposals(study)
    assert len(proposals) == grid.search.trials == 6
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in proposals)
    keys = [k for t in proposals for k in t.user_attrs[KEYS]]
    assert rows(env, keys) == {k: ["complete"] for k in keys}
    # every trained configuration is under the FLOPs cap, by its own leaderboard record
    from results.store import LeaderboardStore

    values = LeaderboardStore(env["H2OT_DB_URL"]).trial_values(keys)
    assert all(v["gflops"] <= grid.search.max_gflops for v in values.values())
    assert [t.values for t in proposals] == [[values[t.user_attrs[KEYS][0]]["mpjpe"],
                                              values[t.user_attrs[KEYS][0]]["gflops"]] for t in proposals]
    rejected = len(study.trials) - len(proposals)
    assert f"proposals rejected before training: {rejected} over max_gflops" in err
    client = MlflowClient(env["MLFLOW_TRACKING_URI"])
    exp = client.get_experiment_by_name("search_smoke")
    runs = client.search_runs([exp.experiment_id], "tags.`h2ot.trial_key` != ''")
    assert sorted(r.data.tags["h2ot.trial_key"] for r in runs) == sorted(keys)
    # the front and its hypervolume come from the same leaderboard
    res = runner.invoke(app, ["pareto", "--campaign", "search_smoke", "--db-url", env["H2OT_DB_URL"]])
    assert res.exit_code == 0 and "Hypervolume" in res.output


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.timeout(900)
def test_search_reuses_a_configuration_already_trained(tmp_path, env):
    one = {"space": {"pruner": ["tpc"], "recoverer": ["tra"], "tokens": [9]}, "budget": {"trials": 1}}
    first, second = search_file(tmp_path, "first", **one), search_file(tmp_path, "second", **one)
    rc, _, err = finish(start([str(first)], env))
    assert rc == 0, err[-3000:]
    rc, _, err = finish(start([str(second)], env))
    assert rc == 0, err[-3000:]
    assert "1 read back from the leaderboard" in err
    (t,) = _proposals(_study(env, "second"))
    assert t.state == optuna.trial.TrialState.COMPLETE
    # the smoke grid's TPC+TRA 1:9 trial: the same configuration, the same key
    assert t.user_attrs[KEYS] == ["2559fea449f0ce49"]


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.timeout(1200)
def test_killed_driver_resumes_the_search_without_resampling(tmp_path, env):
    path = search_file(tmp_path, "resumed", budget={"trials": 4}, sampler={"name": "tpe", "seed": 3})
    proc = start([str(path)], env)

    def two_told() -> bool:
        try:
            return sum(t.state == optuna.trial.TrialState.COMPLETE for t in _proposals(_study(env, "resumed"))) >= 2
        except Exception:  # the study or its tables do not exist yet
            return False

    wait_for(two_told, proc, timeout=400, what="two proposals told")
    kill(proc)
    before = {t.number: (t.params, t.user_attrs.get(KEYS)) for t in _proposals(_study(env, "resumed"))}
    told = {n for n, t in zip(before, _proposals(_study(env, "resumed")), strict=True)
            if t.state == optuna.trial.TrialState.COMPLETE}
    rc, _, err = finish(start([str(path)], env), timeout=600)
    assert rc == 0, err[-3000:]
    after = _proposals(_study(env, "resumed"))
    assert len(after) == 4 and all(t.state == optuna.trial.TrialState.COMPLETE for t in after)
    for t in after:  # every proposal made before the kill is still there, unchanged, not sampled again
        if t.number in before:
            assert (t.params, t.user_attrs.get(KEYS)) == before[t.number]
    assert told <= {t.number for t in after}
    keys = [k for t in after for k in t.user_attrs[KEYS]]
    assert rows(env, keys) == {k: ["complete"] for k in keys}


def test_parameters_are_the_layers_and_token_counts_they_mean(tmp_path):
    """optuna-dashboard reads params: `tokens_1=8` must be 8 tokens (it once was the 8th value, 11 tokens)."""
    from orchestrator.search import PARAMS_ATTR, _propose, open_study
    from results.store import LeaderboardStore

    path = search_file(tmp_path, fixed={"model": {"depth": 6}},
                       space={"stages": [1, 2], "layer": {"low": 1, "high": 5}, "tokens": [2, 3, 5, 8, 13, 21]},
                       budget={"trials": 20})
    grid = load_grid(path)
    store = LeaderboardStore(f"sqlite:///{tmp_path / 'lb.sqlite'}")
    study = open_study(grid.search, "meaning", store)
    assert study.user_attrs[PARAMS_ATTR] == "values"
    for _ in range(12):
        _propose(grid.search, grid, study, {"invalid": 0, "over_budget": 0})
    for t in (t for t in study.trials if SPEC in t.user_attrs):
        stages = [stage.split(":") for stage in t.user_attrs["schedule"].split(",")]
        for j, (layer, tokens) in enumerate(stages, start=1):
            assert t.params[f"layer_{j}"] == int(layer)  # evenly spaced: the value itself
            assert t.params[f"tokens_{j}_index"] == [2, 3, 5, 8, 13, 21].index(int(tokens))  # uneven: named so
            assert f"tokens_{j}" not in t.params


def test_a_study_begun_with_positions_keeps_them(tmp_path):
    """A study from before values were stored (no attribute, trials told) goes on with positions, so its
    sampler learns from one consistent history."""
    from orchestrator.search import PARAMS_ATTR, _propose, open_study
    from results.store import LeaderboardStore

    grid = load_grid(SMOKE)  # tokens {low: 3, high: 21}: position = tokens - 3
    url = f"sqlite:///{tmp_path / 'lb.sqlite'}"
    store = LeaderboardStore(url)
    before = optuna.create_study(study_name="old", storage=study_url(url), directions=grid.search.directions)
    before.add_trial(optuna.trial.create_trial(params={"tokens_1": 5},
                                               distributions={"tokens_1": optuna.distributions.IntDistribution(0, 18)},
                                               values=[400.0, 0.02]))
    study = open_study(grid.search, "old", store)
    assert study.user_attrs[PARAMS_ATTR] == "positions"
    proposal = _propose(grid.search, grid, study, {"invalid": 0, "over_budget": 0})
    trial = study.trials[proposal.number]
    assert trial.params["tokens_1"] == int(trial.user_attrs["schedule"].split(":")[1]) - 3


@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.timeout(300)
def test_search_with_its_device_budget_spent_proposes_nothing(env, tmp_path):
    from h2ot_core.contracts import TrialResult, TrialSpec, Usage
    from results.store import LeaderboardStore

    path = search_file(tmp_path, "spent", budget={"max_device_hours": 0.001})
    store = LeaderboardStore(env["H2OT_DB_URL"])
    done = TrialSpec("mixste", frames=27, model={"dim": 32, "depth": 2, "num_heads": 2})
    store.upsert_result(TrialResult(done.trial_key, done.to_dict(), "complete", usage=Usage(3000.0, 600.0, 1.0)),
                        campaign="spent")  # an earlier run of this campaign spent an hour
    rc, _, err = finish(start([str(path)], env), timeout=240)
    assert rc == 0, err[-3000:]
    assert store.campaign_status("spent") == {"complete": 1}  # nothing proposed, nothing trained
    assert _proposals(_study(env, "spent")) == []


@pytest.mark.slow
@pytest.mark.ray
def test_a_second_driver_of_a_live_study_is_refused_in_one_line(tmp_path, env):
    path = search_file(tmp_path, "twice", budget={"trials": 1})
    procs = [start([str(path)], env)]
    time.sleep(0.5)
    procs.append(start([str(path)], env))
    ends = sorted((finish(p, timeout=600) for p in procs), key=lambda e: e[0])
    (rc_ok, _, err_ok), (rc_refused, _, err_refused) = ends
    assert rc_ok == 0, err_ok[-3000:]
    assert rc_refused == 2, err_refused[-3000:]
    assert "study twice is being run by " in err_refused and "stop it" in err_refused
    assert "Traceback" not in err_refused
    (t,) = _proposals(_study(env, "twice"))  # proposal #0 trained once, told once
    assert t.state == optuna.trial.TrialState.COMPLETE
