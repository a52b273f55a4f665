"""deploy/kuberay/rayjob.yaml: a RayJob whose entrypoint is a command the CLI has, with options it has, on a
grid that loads, and whose credentials come from a Secret (never written in the manifest)."""

from __future__ import annotations

import shlex
from pathlib import Path

import ray
import yaml
from typer.main import get_command
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.grid import load_grid

REPO = Path(__file__).resolve().parents[2]
MANIFEST = REPO / "deploy" / "kuberay" / "rayjob.yaml"


def manifest() -> dict:
    return yaml.safe_load(MANIFEST.read_text())


def run_options() -> set[str]:
    """Every option name of ``h2ot campaign run``, from the command itself."""
    run = get_command(app).commands["campaign"].commands["run"]  # type: ignore[attr-defined]
    return {opt for param in run.params for opt in (*param.opts, *param.secondary_opts) if opt.startswith("-")}


def test_rayjob_entrypoint_is_a_valid_campaign_run():
    doc = manifest()
    assert doc["apiVersion"] == "ray.io/v1" and doc["kind"] == "RayJob"
    argv = shlex.split(doc["spec"]["entrypoint"])
    assert argv[:3] == ["h2ot", "campaign", "run"]
    grid = argv[3]
    assert load_grid(REPO / grid).expand()  # the grid the image's working directory holds loads and expands
    used = [a.split("=", 1)[0] for a in argv[4:] if a.startswith("-")]
    assert used and set(used) <= run_options(), set(used) - run_options()
    assert argv[argv.index("--address") + 1] == "auto"
    assert argv[argv.index("--storage") + 1].startswith("s3://")
    # ... and the help a user reads lists each of them too
    help_text = CliRunner().invoke(app, ["campaign", "run", "--help"], terminal_width=200).output
    for option in used:
        assert option in help_text, option


def test_rayjob_cluster_has_a_gpu_worker_group_and_secrets_from_a_secret():
    spec = manifest()["spec"]
    cluster = spec["rayClusterSpec"]
    assert cluster["rayVersion"].rsplit(".", 1)[0] == ray.__version__.rsplit(".", 1)[0]
    assert spec["shutdownAfterJobFinishes"] is True
    head = cluster["headGroupSpec"]
    workers = cluster["workerGroupSpecs"]
    gpu_limits = [c["resources"]["limits"].get("nvidia.com/gpu") for w in workers
                  for c in w["template"]["spec"]["containers"]]
    assert any(g and int(g) >= 1 for g in gpu_limits)
    containers = [*head["template"]["spec"]["containers"],
                  *(c for w in workers for c in w["template"]["spec"]["containers"])]
    for container in containers:
        env = {e["name"]: e for e in container["env"]}
        for name in ("H2OT_DB_URL", "MLFLOW_TRACKING_URI"):
            assert "value" not in env[name], f"{name} written in the manifest"
            assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "h2ot-secrets"
