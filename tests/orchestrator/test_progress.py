"""Campaign progress: the terminal view (its rendered text), timestamped log lines, counts carried across
Tune runs, the ETA, and a real non-tty campaign whose stderr shows its state while it runs."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from rich.console import Console

from orchestrator.clock import PROGRESS_INTERVAL_ENV, duration, interval_s
from orchestrator.progress import CampaignCounter, CampaignProgress
from orchestrator.trainable import RESULT_KEY

REPO = Path(__file__).resolve().parents[2]
STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d ")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def counter(terminal: bool, **kw) -> tuple[CampaignCounter, io.StringIO, Clock]:
    buf, clock = io.StringIO(), Clock()
    console = Console(file=buf, width=120, force_terminal=terminal, color_system=None, soft_wrap=True)
    c = CampaignCounter(campaign="demo", terminal=terminal, interval=30.0, console=console, clock=clock,
                        wall=lambda: 1_750_000_000.0, **kw)
    return c, buf, clock


def final(status: str, mpjpe: float) -> dict:
    return {"epoch": 4, "test_mpjpe": mpjpe, RESULT_KEY: json.dumps({"status": status})}


def test_log_mode_prints_timestamped_trial_lines_and_a_status_line_every_interval():
    c, buf, clock = counter(terminal=False)
    c.submit(3, kept=1)
    c.trial_started("k1", "mixste tpc/tra 1:9 seed 0", 4)
    c.trial_started("k2", "mixste tps/tri 1:9 seed 0", 4)
    clock.now += 10
    c.trial_result("k1", {"epoch": 2, "train_loss": 0.5})
    c.draw()
    assert "finished (" not in buf.getvalue()  # 10 s < the 30 s interval: no status line yet
    clock.now += 19
    c.trial_result("k1", final("complete", 41.25))
    c.trial_finished("k1")
    clock.now += 1
    c.draw()
    lines = buf.getvalue().splitlines()
    assert all(STAMP.match(line) for line in lines), lines
    assert any("started  k1  mixste tpc/tra 1:9 seed 0" in line for line in lines)
    assert any(line.endswith("finished k1  mixste tpc/tra 1:9 seed 0: complete after 29s") for line in lines)
    status = [line for line in lines if "finished (" in line]
    assert len(status) == 1
    # 1 trial done + k2 (no epoch yet) in 30 s: 2 trials left at 30 s each
    assert status[0].endswith("campaign demo: 1/3 finished (1 complete), 1 running, 1 pending, 1 reused; "
                              "elapsed 30s, ETA 1m00s; best test_mpjpe 41.25")
    c.trial_finished("k2", error=True)
    c.close()
    assert buf.getvalue().splitlines()[-1].endswith("2/3 finished (1 complete, 1 failed), 0 running, 1 pending, "
                                                    "1 reused; elapsed 30s, ETA 15s; best test_mpjpe 41.25")


def test_terminal_view_lists_running_trials_with_epoch_loss_and_elapsed_time():
    c, buf, clock = counter(terminal=True)
    c.submit(4, kept=0)
    c.trial_started("aaaa", "mixste tpc/tra 1:9 seed 0", 4)
    clock.now += 5
    c.trial_started("bbbb", "mixste tps/tri 1:9 seed 1", 4)
    clock.now += 15
    c.trial_result("aaaa", {"epoch": 2, "train_loss": 0.12345})
    view = Console(file=io.StringIO(), width=100, color_system=None)
    with view.capture() as cap:
        view.print(c.view())
    lines = cap.get().splitlines()
    # aaaa: half done in 20 s; 2 trials still to start + 1.5 of these: 3.5 x 40 s = 2m20s
    assert lines[0] == "campaign demo: 0/4 finished (0 complete), 2 running, 2 pending; elapsed 20s, ETA 2m20s"
    assert re.fullmatch(r"\s+aaaa\s+mixste tpc/tra 1:9 seed 0\s+epoch 2/4\s+loss 0\.1235\s+20s\s*", lines[1])
    assert re.fullmatch(r"\s+bbbb\s+mixste tps/tri 1:9 seed 1\s+epoch 0/4\s+loss -\s+15s\s*", lines[2])
    assert len(lines) == 3
    c.close()
    assert "0/4 finished" in buf.getvalue()  # the live display drew to its console
    assert not STAMP.search(buf.getvalue())  # no log lines in a terminal


def test_a_shared_counter_carries_counts_across_tune_runs():
    c, buf, _ = counter(terminal=False)
    for batch in range(3):  # a search: one Tune run (one progress callback) per batch of 2
        progress = CampaignProgress(2, skipped=1 if batch else 0, counter=c)
        progress.setup()
        progress.setup()  # a chunked run calls setup per chunk: counted once
        for i in range(2):
            key = f"b{batch}t{i}"
            c.trial_started(key, "x", 1)
            c.trial_result(key, final("diverged" if key == "b2t1" else "complete", 40.0 + i))
            c.trial_finished(key)
        progress.on_experiment_end([])
        assert "finished (" not in buf.getvalue()  # a shared counter is closed by its owner, not by a batch
    assert (c.submitted, c.finished, c.done, c.diverged, c.kept) == (6, 6, 5, 1, 2)
    c.close()
    c.close()  # idempotent
    status = [line for line in buf.getvalue().splitlines() if "finished (" in line]
    assert len(status) == 1 and "6/6 finished (5 complete, 1 diverged)" in status[0] and "2 reused" in status[0]


def test_own_counter_closes_with_its_run_and_a_stopped_trial_is_counted_stopped():
    progress = CampaignProgress(1, campaign="c")
    c, buf, _ = counter(terminal=False)
    progress.counter = c
    progress.setup()
    c.trial_started("k", "x", 8)
    c.trial_result("k", {"epoch": 1, "sched_test_mpjpe": 50.0})
    c.trial_finished("k")  # completed without a final report: the scheduler stopped it
    progress.on_experiment_end([])
    assert "1/1 finished (0 complete, 1 stopped)" in buf.getvalue().splitlines()[-1]


@pytest.mark.parametrize(("raw", "ok"), [("", 30.0), ("2.5", 2.5), ("0", None), ("abc", None), ("-1", None)])
def test_the_interval_comes_from_its_env_var(monkeypatch, raw, ok):
    from h2ot_core.errors import H2OTError

    monkeypatch.setenv(PROGRESS_INTERVAL_ENV, raw)
    if ok is None:
        with pytest.raises(H2OTError, match=rf"{PROGRESS_INTERVAL_ENV}='{re.escape(raw)}': expected a number"):
            interval_s()
    else:
        assert interval_s() == ok


def test_durations_read_short():
    assert [duration(s) for s in (0, 42.4, 185, 7620)] == ["0s", "42s", "3m05s", "2h07m"]


@pytest.mark.slow
@pytest.mark.ray
def test_a_campaign_in_a_log_prints_timestamped_status_lines_while_it_runs(tmp_path):
    import yaml

    doc = {"name": "progress_log", "version": 1, "include": str(REPO / "search_spaces" / "_base" / "tiny_model.yaml"),
           "grid": {"pruner": "tps", "recoverer": "tri", "schedule": "1:9", "seed": [0, 1]},
           "fixed": {"train": {"epochs": 2}}}
    grid = tmp_path / "progress_log.yaml"
    grid.write_text(yaml.safe_dump(doc))
    env = {**os.environ, "H2OT_RUNS_DIR": str(tmp_path / "runs"), "H2OT_DB_URL": f"sqlite:///{tmp_path / 'lb.sqlite'}",
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}", PROGRESS_INTERVAL_ENV: "1",
           "H2OT_CACHE": str(tmp_path / "cache")}
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator.cli", "campaign", "run", str(grid), "--num-cpus", "1",
                             "--retries", "0"], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    seen: list[tuple[str, bool]] = []  # (line, whether the campaign was still running when it arrived)

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            seen.append((line.rstrip("\n"), proc.poll() is None))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    assert proc.stdout is not None
    out = proc.stdout.read()  # until the campaign closes it
    try:
        proc.wait(timeout=240)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"campaign did not finish: {seen[-20:]}")
    reader.join(10)
    assert proc.returncode == 0, seen[-20:]
    live = [line for line, running in seen if running and STAMP.match(line)]
    # while it ran: each trial's start, at least one periodic status line with a running trial, a finish
    assert sum(" started  " in line for line in live) == 2, seen
    assert any(re.search(r"\d/2 finished \(.*\), 1 running, .*elapsed \d+s, ETA", line)
               for line in live), seen
    assert any(" finished " in line and ": complete after " in line for line in live), seen
    assert any(re.search(r"2/2 finished \(2 complete\), 0 running, 0 pending", line) for line, _ in seen), seen
    assert "progress_log" in out


# --- h2ot train: a step-level bar with ETA ---------------------------------------------------------------


def train_progress(terminal: bool):
    from orchestrator.commands.train import TrainProgress

    buf, clock = io.StringIO(), Clock()
    console = Console(file=buf, width=120, force_terminal=terminal, color_system=None)
    return TrainProgress(2, console, terminal=terminal, interval=30.0, clock=clock,
                         wall=lambda: 1_750_000_000.0), buf, clock


def test_train_progress_in_a_log_prints_a_line_per_epoch_and_every_interval():
    p, buf, clock = train_progress(terminal=False)
    with p:
        for i in range(1, 11):
            clock.now += 4
            p.step(i, 10)  # one line at 32 s (step 8): 8 of 20 steps in 32 s, 12 left
        p.epoch({"epoch": 1, "train_loss": 0.25, "test_mpjpe": 41.234})
        clock.now += 4
        p.step(1, 10)
    lines = buf.getvalue().splitlines()
    assert all(STAMP.match(line) for line in lines), lines
    assert [line[20:] for line in lines] == [
        "epoch 1/2 step 8/10 (40%); elapsed 32s, ETA 48s",
        "epoch 1/2 done: loss 0.2500  test MPJPE 41.23 mm",
    ]
    assert p.status() == "epoch 2/2 step 1/10 (55%); elapsed 44s, ETA 36s"


def test_train_progress_in_a_terminal_draws_steps_epochs_and_the_last_epoch_s_metrics():
    p, _, _ = train_progress(terminal=True)
    p.step(3, 10)
    p.epoch({"epoch": 1, "train_loss": 0.25, "test_mpjpe": 41.234})
    p.step(5, 10)
    view = Console(file=io.StringIO(), width=140, color_system=None)
    with view.capture() as cap:
        view.print(p.bar.get_renderable())
    text = cap.get()
    assert re.search(r"epoch 2/2 .* step 5/10 loss 0\.2500  test MPJPE 41\.23 mm \d:\d\d:\d\d ETA ", text), text
    assert p.completed == 15 and p.bar.tasks[0].total == 20
    p.epoch({"epoch": 2, "train_loss": 0.2, "test_mpjpe": 40.0})
    assert p.bar.tasks[0].completed == 20  # full after the last epoch


def test_an_interrupted_run_counts_its_trials_in_flight_stopped(monkeypatch):
    from orchestrator import interrupt

    progress = CampaignProgress(3, campaign="c")
    c, buf, _ = counter(terminal=False)
    progress.counter = c
    progress.setup()
    for key in ("a", "b"):
        c.trial_started(key, "x", 8)
    monkeypatch.setattr(interrupt, "_received", 2)  # SIGINT noted (the handler's only effect)
    progress.more_to_come = True  # even mid-way through a chunked campaign: the display closes
    progress.on_experiment_end([])
    last = buf.getvalue().splitlines()[-1]
    assert "2/3 finished (0 complete, 2 stopped), 0 running, 1 pending" in last
