"""deploy/slurm/h2ot_campaign.sbatch run on this machine as a 2-node "allocation": fake ``srun`` (runs the
command here) and ``scontrol`` (lists the nodes) on PATH, real ``ray start --head --block`` and a real worker
``ray start --block``, and a stand-in ``h2ot`` that records how it was called and counts the cluster's live
nodes. The script's EXIT trap must stop every node it started: the head's port is closed afterwards and no
process of its temp dir is left (any left over is killed by pid, and the test fails).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from testkit import free_port, port_open

pytestmark = [pytest.mark.slow, pytest.mark.ray, pytest.mark.timeout(900)]

REPO = Path(__file__).resolve().parents[2]
SBATCH = REPO / "deploy" / "slurm" / "h2ot_campaign.sbatch"
BIN = Path(sys.executable).parent

FAKE_SRUN = """#!/bin/bash
# srun stand-in: drop srun's own options, log the command, run it here
while [[ $# -gt 0 && "$1" == -* ]]; do
  case "$1" in -w|-N|-n|--nodelist) shift 2;; *) shift;; esac
done
echo "$*" >> "$FAKE_LOG"
exec "$@"
"""
FAKE_SCONTROL = """#!/bin/bash
[[ "$1 $2" == "show hostnames" ]] || { echo "unexpected scontrol $*" >&2; exit 1; }
tr ',' '\\n' <<< "$3"
"""
# h2ot stand-in: records its arguments and the live node count of the cluster it was pointed at
FAKE_H2OT = """#!/bin/bash
echo "$*" > "$FAKE_OUT"
"$H2OT_PYTHON" -c 'import sys, ray; ray.init(address=sys.argv[1], logging_level="ERROR"); \
print(sum(n["Alive"] for n in ray.nodes()))' "$5" >> "$FAKE_OUT"
"""


def processes_of(temp: str) -> list[int]:
    """Pids whose command line names ``temp`` (every Ray process of that node's session)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if temp.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def write_exe(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_sbatch_starts_head_and_worker_runs_the_campaign_and_stops_them(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    write_exe(fake / "srun", FAKE_SRUN)
    write_exe(fake / "scontrol", FAKE_SCONTROL)
    write_exe(fake / "h2ot", FAKE_H2OT)
    port, dash = free_port(), free_port()
    temp = tempfile.mkdtemp(prefix="h2s")  # short: Ray's unix socket paths must stay under ~107 bytes
    home = tmp_path / "home"  # a new home without ~/.ray/auth_token: the recipe makes one
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_ADDRESS", "RAY_AUTH_TOKEN", "H2OT_"))}
    env.update(
        HOME=str(home), PATH=f"{fake}{os.pathsep}{BIN}{os.pathsep}{env['PATH']}",
        SLURM_JOB_NODELIST="localhost,localhost",
        SLURM_CPUS_PER_TASK="1", SLURM_SUBMIT_DIR=str(REPO), H2OT_RAY_PORT=str(port),
        H2OT_RAY_DASHBOARD_PORT=str(dash), H2OT_RAY_HEAD_IP="127.0.0.1", H2OT_RAY_TEMP_DIR=temp,
        H2OT_PYTHON=sys.executable, H2OT_RAY_WAIT_S="120",
        # two raylets on one machine: each dashboard agent needs its own HTTP port
        H2OT_RAY_START_ARGS=f"--dashboard-agent-listen-port={free_port()}",
        FAKE_LOG=str(tmp_path / "srun.log"), FAKE_OUT=str(tmp_path / "h2ot.out"))
    try:
        proc = subprocess.run(["bash", str(SBATCH), "search_spaces/smoke.yaml", "--retries", "1"], cwd=tmp_path,
                              env=env, capture_output=True, text=True, timeout=400)
        assert proc.returncode == 0, proc.stderr[-4000:]
        assert "h2ot: 2 of 2 Ray node(s) up" in proc.stderr
        token = (home / ".ray" / "auth_token").read_text().strip()
        assert len(token) >= 32 and token not in proc.stdout + proc.stderr  # made, and never printed
        srun = (tmp_path / "srun.log").read_text().splitlines()
        assert len(srun) == 2
        assert srun[0].startswith("ray start --head --block --node-ip-address=127.0.0.1")
        assert f"--port={port}" in srun[0] and "--dashboard-host=127.0.0.1" in srun[0]
        assert f"--temp-dir {temp}" in srun[0] and "--num-cpus 1" in srun[0]
        assert srun[1].startswith(f"ray start --block --address=127.0.0.1:{port}") and "--num-cpus 1" in srun[1]
        args, nodes = (tmp_path / "h2ot.out").read_text().splitlines()
        # the campaign ran from the repository (cd $SLURM_SUBMIT_DIR), joined to the 2-node cluster
        assert args == f"campaign run search_spaces/smoke.yaml --address 127.0.0.1:{port} --retries 1"
        assert nodes == "2"
        assert not port_open(port) and not port_open(dash)
        assert processes_of(temp) == []
    finally:
        for pid in processes_of(temp):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(temp, ignore_errors=True)


def test_sbatch_outside_an_allocation_says_so(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    proc = subprocess.run(["bash", str(SBATCH), "search_spaces/smoke.yaml"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "not inside a Slurm allocation" in proc.stderr
