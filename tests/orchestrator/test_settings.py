"""The settings table: every environment variable declared once, the forwarding lists derived from it,
``h2ot config`` masking secrets, and the README's table generated from it."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

from typer.testing import CliRunner

from benchmarks import readme
from h2ot_core import environment
from h2ot_core.environment import SETTINGS
from orchestrator.cli import app

ROOT = Path(__file__).resolve().parents[2]
#: variables read or set for the libraries themselves, not H2OT Lab settings: Ray's job supervisor and GPU
#: assignment, and the quiet-output switches set (never read) for Ray Tune
LIBRARY_ENV = frozenset({"RAY_JOB_CONFIG_JSON_ENV_VAR", "CUDA_VISIBLE_DEVICES", "RAY_AIR_NEW_OUTPUT",
                         "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "RAY_USAGE_STATS_ENABLED",
                         "TUNE_DISABLE_STRICT_METRIC_CHECKING", "TUNE_DISABLE_SIGINT_HANDLER", "CXX"})
ENV_CALLS = ("get", "setdefault", "pop", "getenv")


def _env_names(path: Path) -> set[str]:
    """String constants used as an environment variable's name in ``path``: ``os.environ[...]``,
    ``os.environ.get/setdefault/pop(...)``, ``os.getenv(...)``."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        key = None
        if isinstance(node, ast.Subscript) and ast.unparse(node.value) == "os.environ":
            key = node.slice
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args and (
                (ast.unparse(node.func.value) == "os.environ" and node.func.attr in ENV_CALLS)
                or ast.unparse(node.func) == "os.getenv"):
            key = node.args[0]
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            names.add(key.value)
    return names


def _sources() -> list[Path]:
    return [p for pkg in ("orchestrator", "results", "h2ot_core") for p in sorted((ROOT / pkg).rglob("*.py"))
            if p != ROOT / "h2ot_core" / "environment.py"]


def test_every_variable_read_is_declared_once():
    declared = [s.name for s in SETTINGS]
    assert len(declared) == len(set(declared))
    undeclared = {str(p.relative_to(ROOT)): sorted(n) for p in _sources()
                  if (n := _env_names(p) - set(declared) - LIBRARY_ENV)}
    assert undeclared == {}
    # and no H2OT_ name is spelled out as a value anywhere else (a constant naming it is a second declaration)
    spelled = {str(p.relative_to(ROOT)) for p in _sources()
               if any(isinstance(n, ast.Constant) and isinstance(n.value, str) and re.fullmatch(r"H2OT_[A-Z0-9_]+", n.value)
                      for n in ast.walk(ast.parse(p.read_text())))}
    assert spelled == set()


def test_the_finder_sees_each_way_of_reading_the_environment(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("import os\nos.environ['A']\nos.environ.get('B')\nos.getenv('C')\n"
                      "os.environ.setdefault('D', '1')\nos.environ.pop('E', None)\nos.environ.get(name)\n")
    assert _env_names(source) == {"A", "B", "C", "D", "E"}


def test_what_a_worker_gets_a_submitted_job_gets_too():
    assert {s.name for s in SETTINGS if s.workers} <= {s.name for s in SETTINGS if s.job}


def test_forwarding_lists_are_derived_from_the_table(monkeypatch):
    for s in SETTINGS:
        monkeypatch.delenv(s.name, raising=False)
    values = {"H2OT_TUNE_CHUNK": "50", "H2OT_DB_RETRY_S": "5", "H2OT_MLFLOW_PROBE_S": "7",
              "H2OT_SCRATCH_DIR": "/scratch", "H2OT_DATA_DIR": "/data", "RAY_ADDRESS": "auto"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("H2OT_CACHE", "   ")  # blank counts as unset
    # the four a submitted job used to lose, and the worker settings; never the cluster address
    assert environment.job_env() == {k: v for k, v in values.items() if k != "RAY_ADDRESS"}
    assert environment.worker_env() == {"H2OT_SCRATCH_DIR": "/scratch", "H2OT_DATA_DIR": "/data"}


def test_a_bad_number_names_the_variable_and_its_value(monkeypatch):
    import pytest

    from h2ot_core.errors import ConfigError

    monkeypatch.setenv("H2OT_TUNE_CHUNK", "many")
    with pytest.raises(ConfigError, match=r"H2OT_TUNE_CHUNK='many': expected a number of trials >= 1"):
        environment.TUNE_CHUNK.number(minimum=1, what="a number of trials")
    monkeypatch.setenv("H2OT_TUNE_CHUNK", "20")
    assert environment.TUNE_CHUNK.number(minimum=1) == 20


def test_config_prints_effective_values_with_secrets_masked(monkeypatch, tmp_path):
    for s in SETTINGS:
        monkeypatch.delenv(s.name, raising=False)
    monkeypatch.setenv("H2OT_DB_URL", "postgresql+psycopg://me:hunter2@db.example:5433/h2ot")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://bot:s3cret@mlflow.example/")
    monkeypatch.setenv("H2OT_RUNS_DIR", str(tmp_path))
    monkeypatch.setenv("H2OT_SERVE_TOKEN", "tok-never-shown")
    result = CliRunner().invoke(app, ["config", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert "hunter2" not in result.output and "s3cret" not in result.output and "tok-never" not in result.output
    rows = {r["variable"]: r for r in json.loads(result.stdout)}
    assert list(rows) == [s.name for s in SETTINGS]
    assert rows["H2OT_DB_URL"]["value"] == "postgresql+psycopg://me:***@db.example:5433/h2ot"
    assert rows["H2OT_DB_URL"]["from"] == "env" and rows["H2OT_DB_URL"]["to job"] == "yes"
    assert rows["MLFLOW_TRACKING_URI"]["value"] == "https://bot:***@mlflow.example/"
    assert rows["H2OT_SERVE_TOKEN"]["value"] == "***"  # a token is a credential through and through
    # a default is shown resolved, under the runs folder the environment names
    assert rows["H2OT_STORAGE"] == {**rows["H2OT_STORAGE"], "value": str(tmp_path.resolve()), "from": "default"}
    assert rows["H2OT_DATA_DIR"]["from"] == "unset" and rows["H2OT_DATA_DIR"]["to workers"] == "yes"


def test_readme_settings_table_is_generated_from_the_table():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    new, names = readme.fill(text, ROOT / "benchmarks" / "results")
    assert "settings" in names
    assert new == text, "README.md is stale: run make readme"
    assert environment.markdown_table() in text
    for s in SETTINGS:
        assert f"| `{s.name}` |" in text
