"""Ctrl-C and SIGTERM of ``h2ot campaign run``: trials in flight end ``stopped`` (interrupted), the CLI says how
to resume and exits 130 / 143; the same command resumes exactly; an interrupted ``--rerun`` neither exits 0 nor
shows its trials complete; a second Ctrl-C exits at once.

Real processes and real signals: the campaign runs as a subprocess in its own process group (its own local
Ray), and SIGINT goes to the whole group, as a terminal's Ctrl-C does.
"""

from __future__ import annotations

import os
import signal
import time

import pytest
import sqlalchemy as sa
import yaml
from testkit import REPO, finish, live_steps, manifest_epoch, start, trial_rows, wait_for

from orchestrator.grid import load_grid
from orchestrator.interrupt import RESUME_HINT

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.timeout(1200)]

TINY = "search_spaces/_base/tiny_model.yaml"


def stop_reasons(environ: dict[str, str], key: str) -> list[tuple[str, str | None]]:
    engine = sa.create_engine(environ["H2OT_DB_URL"])
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(
                "select status, stop_reason from trials where trial_key = :k"), {"k": key})]
    finally:
        engine.dispose()


def test_interrupted_campaign_records_stopped_exits_130_and_resumes_exactly(tmp_path, env):

    doc = {"name": "ctrlc", "include": str(REPO / TINY),
           "grid": {"pruner": "tps", "recoverer": "tri", "schedule": "1:9"},
           "fixed": {"train": {"epochs": 4, "max_train_windows": 600}, "data": {"minutes": 3}}}
    path = tmp_path / "ctrlc.yaml"
    path.write_text(yaml.safe_dump(doc))
    (spec,) = load_grid(path).expand()
    key = spec.trial_key
    checkpoint = tmp_path / "runs" / "trials" / key / "checkpoint"
    args = [str(path), "--retries", "0"]

    # Ctrl-C in a terminal: SIGINT to the whole process group, during epoch 3
    proc = start(args, env)
    wait_for(lambda: manifest_epoch(checkpoint) == 2 and live_steps(env, key) == [1, 2], proc,
             what="epoch 2's checkpoint")
    os.killpg(proc.pid, signal.SIGINT)
    rc, out, err = finish(proc)
    assert rc == 130, err[-3000:]
    assert RESUME_HINT in err and "SIGINT received" in err
    assert stop_reasons(env, key) == [("stopped", "interrupted")]
    assert "stopped: interrupted" in out
    saved = manifest_epoch(checkpoint)  # the epoch in flight may have ended before the worker stopped
    assert saved in (2, 3)

    # the same command resumes after the last complete epoch; every epoch reaches MLflow once
    rc, out, err = finish(start(args, env), timeout=400)
    assert rc == 0, err[-3000:]
    (row,) = trial_rows(env, key)
    assert row["status"] == "complete" and row["epochs_run"] == 4 and row["resumed_from_epoch"] == saved
    assert live_steps(env, key) == [1, 2, 3, 4]

    # an interrupted --rerun (SIGTERM, as `kill` or a scheduler sends): exit 143, its trial shown stopped,
    # not complete; the record keeps the complete row the rerun did not replace
    proc = start([*args, "--rerun"], env)
    wait_for(lambda: manifest_epoch(checkpoint) == 1, proc, what="the rerun's first epoch")
    proc.send_signal(signal.SIGTERM)
    rc, out, err = finish(proc)
    assert rc == 143, err[-3000:]
    assert RESUME_HINT in err and "SIGTERM received" in err and "with --rerun it trains every trial again" in err
    assert "complete" not in out and "stopped: interrupted" in out
    assert stop_reasons(env, key) == [("complete", None)]

    # a second Ctrl-C exits at once: no graceful stop, no summary
    proc = start([*args, "--rerun"], env)
    wait_for(lambda: manifest_epoch(checkpoint) == 1, proc, what="the rerun's first epoch")
    os.killpg(proc.pid, signal.SIGINT)
    time.sleep(2)  # two signals at once would reach Python's handler as one
    os.killpg(proc.pid, signal.SIGINT)
    rc, out, err = finish(proc)
    assert rc == 130
    assert "SIGINT received" in err and RESUME_HINT not in err


def test_a_local_run_serves_rays_dashboard_and_prints_its_url(tmp_path, env):
    """With ray[default] installed, a local campaign starts Ray's own dashboard on 127.0.0.1 and says where."""
    import re
    import urllib.request

    from test_resume import REPO

    doc = {"name": "dash", "include": str(REPO / TINY), "grid": {"pruner": "tpc", "recoverer": "tra",
                                                                 "schedule": "1:9"}}
    path = tmp_path / "dash.yaml"
    path.write_text(yaml.safe_dump(doc))
    proc = start([str(path)], {**env, "H2OT_RAY_DASHBOARD": "1"})
    url = None
    for line in proc.stderr:  # the line comes once Ray is up, before any trial
        found = re.search(r"Ray dashboard: (http://127\.0\.0\.1:\d+) ", line)
        if found:
            url = found.group(1)
            break
    assert url, "no dashboard line"
    with urllib.request.urlopen(url, timeout=30) as page:  # the campaign is still running: it answers
        assert page.status == 200
    rc, _, err = finish(proc)
    assert rc == 0, err[-3000:]
