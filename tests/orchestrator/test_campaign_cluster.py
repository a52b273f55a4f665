"""A multi-node campaign: a head and a second node started with ``ray start`` on this machine, and the smoke
grid submitted with ``--address``. Both nodes are this test's own ``ray start --block`` processes (their
own temp dir), stopped by their process ids afterwards, so no other Ray on the machine is touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from testkit import REPO, SMOKE, free_port, wait_port

from orchestrator.grid import load_grid

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.timeout(900)]

RAY = str(Path(sys.executable).with_name("ray"))


# Connects as a driver (reserves no CPU) and waits until the cluster has the nodes; prints how many it has.
COUNT_NODES = """import sys, time, ray
ray.init(address=sys.argv[1], logging_level="ERROR")
deadline = time.monotonic() + 60
alive = lambda: sum(n["Alive"] for n in ray.nodes())
while alive() < int(sys.argv[2]) and time.monotonic() < deadline:
    time.sleep(0.5)
print(alive())
"""


def wait_nodes(address: str, env: dict[str, str], count: int) -> None:
    out = subprocess.run([sys.executable, "-c", COUNT_NODES, address, str(count)], env=env, capture_output=True,
                         text=True, timeout=120)
    if out.returncode or int(out.stdout.split()[-1]) < count:
        pytest.fail(f"the cluster at {address} did not reach {count} nodes: {out.stdout[-500:]}{out.stderr[-2000:]}")


@pytest.fixture
def cluster(tmp_path):
    """``127.0.0.1:<port>`` of a 2-node cluster (1 CPU per node); the nodes are stopped afterwards."""
    port = free_port()
    temp = tempfile.mkdtemp(prefix="h2r")  # short: Ray's unix socket paths must stay under ~107 bytes
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_USAGE_STATS_ENABLED": "0"}
    common = dict(env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    nodes = [subprocess.Popen([RAY, "start", "--head", "--port", str(port), "--num-cpus", "1", "--temp-dir", temp,
                               "--include-dashboard", "false", "--disable-usage-stats", "--block"], **common)]
    try:
        wait_port(port, what="Ray head")
        nodes.append(subprocess.Popen([RAY, "start", "--address", f"127.0.0.1:{port}", "--num-cpus", "1",
                                       "--block"], **common))
        wait_nodes(f"127.0.0.1:{port}", env, 2)
        yield f"127.0.0.1:{port}", env
    finally:
        for node in reversed(nodes):  # `ray start --block` stops its node's processes on SIGTERM
            node.send_signal(signal.SIGTERM)
        for node in reversed(nodes):
            try:
                node.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


def test_smoke_campaign_on_a_two_node_cluster(tmp_path, cluster):
    address, env = cluster
    env = {**env, "H2OT_RUNS_DIR": str(tmp_path / "runs"), "H2OT_DB_URL": f"sqlite:///{tmp_path / 'lb.sqlite'}",
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", "RAY_AIR_NEW_OUTPUT": "0"}
    proc = subprocess.run([sys.executable, "-m", "orchestrator.cli", "campaign", "run", str(SMOKE), "--address",
                           address, "--retries", "1"], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from results.store import LeaderboardStore

    store = LeaderboardStore(env["H2OT_DB_URL"])
    keys = [s.trial_key for s in load_grid(SMOKE).expand()]
    assert {k: store.trial_status(k) for k in keys} == dict.fromkeys(keys, "complete")
    # Trials ran on both nodes: each writes its pid file under the shared runs dir, and the head has one CPU.
    pids = {int((tmp_path / "runs" / "trials" / k / "worker.pid").read_text()) for k in keys}
    assert len(pids) >= 2


def test_unreachable_address_is_a_clear_error_before_anything_starts(tmp_path):
    from typer.testing import CliRunner

    from orchestrator.cli import app

    db = tmp_path / "lb.sqlite"
    res = CliRunner().invoke(app, ["campaign", "run", str(SMOKE), "--address", f"127.0.0.1:{free_port()}",
                                   "--db-url", f"sqlite:///{db}"], env={"H2OT_RUNS_DIR": str(tmp_path / "runs")})
    assert res.exit_code == 2, res.output
    assert "nothing answers" in res.stderr and "ray start --head" in res.stderr
    assert not db.exists() and not (tmp_path / "runs").exists()


def _ray_uses(source: str) -> set[str]:
    """Every ``ray`` module ``source`` imports and every ``ray.`` / ``tune.`` attribute chain it reads."""
    import ast

    uses: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            uses |= {a.name for a in node.names if a.name.split(".")[0] == "ray"}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "ray":
            uses |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Attribute):
            chain, inner = [node.attr], node.value
            while isinstance(inner, ast.Attribute):
                chain.append(inner.attr)
                inner = inner.value
            if isinstance(inner, ast.Name) and inner.id in ("ray", "tune"):
                uses.add(".".join(["ray.tune" if inner.id == "tune" else "ray", *reversed(chain)]))
    return uses


def test_trainable_reports_through_ray_tune_only():
    # ray.train.report raises inside Tune function trainables on ray 2.60; the trainable must not use it.
    import inspect

    import orchestrator.trainable as trainable

    uses = _ray_uses(inspect.getsource(trainable))
    assert "ray.tune.report" in uses  # the report path
    assert [u for u in uses if u.startswith(("ray.train", "ray.air"))] == []
    # what the check would catch, written any of the ways Python allows
    for bad in ("from ray import train\ntrain.report({})", "import ray.train", "import ray\nray.train.report({})"):
        assert any(u.startswith("ray.train") for u in _ray_uses(bad)), bad
