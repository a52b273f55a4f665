"""Campaign storage on a real S3-compatible server (moto's standalone server, started here) and on disk.

The campaign test runs ``h2ot campaign run --storage s3://...`` as a real subprocess: checkpoints, the model
and Ray's folders land in the bucket, the leaderboard names the model by its ``s3://`` URI, and
``h2ot predict`` / ``h2ot evaluate`` read it from there. The unit tests pin URI validation, the one-line
refusal of unusable storage (exit 2, nothing written) and the manifest-last checkpoint upload.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa
import yaml
from testkit import REPO, TINY, cli_env, free_port, moto_server

from orchestrator import checkpoints, storage
from orchestrator.grid import load_grid
from orchestrator.storage import StorageError

BUCKET = "h2ot-test"
AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory):
    """A moto S3 server on 127.0.0.1 with one bucket; yields its endpoint URL."""
    with moto_server(tmp_path_factory.mktemp("moto")) as endpoint:
        import pyarrow.fs as pafs

        os.environ.update(AWS_ENV)  # the AWS SDK reads credentials from the environment
        pafs.S3FileSystem(endpoint_override=endpoint, region="us-east-1", allow_bucket_creation=True
                          ).create_dir(BUCKET)
        yield endpoint


@pytest.fixture
def s3(s3_endpoint, monkeypatch):
    """This process talks to the moto server: endpoint and credentials in the standard AWS variables."""
    for key, value in {**AWS_ENV, "AWS_ENDPOINT_URL": s3_endpoint}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    return s3_endpoint


def cli(args: list[str], env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "orchestrator.cli", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout)


def base_env(tmp_path: Path) -> dict[str, str]:
    env = cli_env(tmp_path, NO_PROXY="127.0.0.1,localhost", **AWS_ENV)
    env.pop("AWS_ENDPOINT_URL_S3", None)
    return env


def grid_file(tmp_path: Path, name: str, train: dict) -> Path:
    doc = {"name": name, "include": str(TINY), "grid": {"pruner": "tpc", "recoverer": "tra", "schedule": "1:9"},
           "fixed": {"train": train}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def one_line_error(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


# -- URIs ----------------------------------------------------------------------------------------------------

def test_uris_are_normalised_and_unknown_schemes_refused(tmp_path, monkeypatch):
    assert storage.normalize("s3://bucket/a/b/") == "s3://bucket/a/b"
    assert storage.normalize(f"file://{tmp_path}/x") == str(tmp_path / "x")
    assert storage.normalize("gs://bkt") == "gs://bkt"
    monkeypatch.chdir(tmp_path)
    assert storage.normalize("rel/dir") == str(tmp_path / "rel" / "dir")
    assert storage.join("s3://b/p", "trials", "k", "model.pt") == "s3://b/p/trials/k/model.pt"
    assert storage.join(str(tmp_path), "trials/") == f"{tmp_path}/trials"
    with pytest.raises(StorageError, match=r"storage 'ftp://host/x': unknown scheme 'ftp'; use a local"):
        storage.normalize("ftp://host/x")
    with pytest.raises(StorageError, match="expected s3://bucket/prefix"):
        storage.normalize("s3:///prefix")
    with pytest.raises(StorageError, match="needs an absolute path"):
        storage.normalize("file://relative/x")
    monkeypatch.setenv("H2OT_STORAGE", "s3://from-env/p/")
    assert storage.resolve(None) == "s3://from-env/p"
    assert storage.resolve(str(tmp_path)) == str(tmp_path)
    monkeypatch.delenv("H2OT_STORAGE")
    monkeypatch.setenv("H2OT_RUNS_DIR", str(tmp_path / "runs"))
    assert storage.resolve(None) == str(tmp_path / "runs")  # the default: the runs folder


@pytest.mark.server
def test_check_leaves_nothing_behind(tmp_path, s3):
    assert storage.check(str(tmp_path / "new")) == str(tmp_path / "new")
    assert list((tmp_path / "new").iterdir()) == []
    assert storage.check(f"s3://{BUCKET}/checked/") == f"s3://{BUCKET}/checked"
    assert storage.listing(f"s3://{BUCKET}/checked") == []


def test_check_names_unreachable_storage_and_how_to_fix_it(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    for key, value in AWS_ENV.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(StorageError) as info:
        storage.check("s3://bucket/prefix")
    text = str(info.value)
    assert text.startswith("storage s3://bucket/prefix: cannot write a test object (")
    assert "AWS_ENDPOINT_URL" in text and "\n" not in text
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(StorageError, match=f"storage {blocker}/sub: cannot write"):
        storage.check(str(blocker / "sub"))


@pytest.mark.server
@pytest.mark.parametrize("bad", ["unreachable", "scheme", "missing-bucket"])
def test_cli_refuses_unusable_storage_with_one_line_and_writes_nothing(tmp_path, bad, s3_endpoint):
    path = grid_file(tmp_path, "bad_storage", {"epochs": 1})
    env = base_env(tmp_path)
    uri, expected = {
        "unreachable": ("s3://bucket/prefix", "Error: storage s3://bucket/prefix: cannot write a test object"),
        "scheme": ("ftp://host/prefix", "Error: storage 'ftp://host/prefix': unknown scheme 'ftp'"),
        "missing-bucket": ("s3://no-such-bucket/p", "Error: storage s3://no-such-bucket/p: cannot write"),
    }[bad]
    env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{free_port()}" if bad == "unreachable" else s3_endpoint
    proc = cli(["campaign", "run", str(path), "--storage", uri], env, timeout=180)
    assert proc.returncode == 2, proc.stderr[-3000:]
    line = one_line_error(proc.stderr)
    assert line.startswith(expected), line
    if bad != "scheme":
        assert "AWS_ENDPOINT_URL" in line and "testing" not in line  # how to fix it; never a credential
    assert not (tmp_path / "lb.sqlite").exists() and not (tmp_path / "runs").exists()
    assert not (tmp_path / "mlflow.db").exists()
    if bad != "unreachable":
        return
    env["H2OT_STORAGE"] = uri  # the environment variable is the same option
    proc = cli(["campaign", "run", str(path)], env, timeout=180)
    assert proc.returncode == 2 and one_line_error(proc.stderr).startswith(expected)


# -- checkpoints ---------------------------------------------------------------------------------------------

def _epoch_files(folder: Path, epoch: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "state.pt").write_bytes(bytes([epoch]) * (1000 + epoch))
    return folder


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.server)])
def root(request, tmp_path):
    if request.param == "local":
        return str(tmp_path / "store")
    request.getfixturevalue("s3")
    return f"s3://{BUCKET}/atomic-{tmp_path.name}"


def test_a_half_written_checkpoint_is_ignored(root, tmp_path, monkeypatch):
    uri = storage.trial_uri(root, "k1", "checkpoint")
    assert checkpoints.fetch_checkpoint(uri, tmp_path / "none") is None  # nothing published yet
    checkpoints.publish_checkpoint(_epoch_files(tmp_path / "e1", 1), uri, epoch=1, trial_key="k1")

    # Epoch 2's upload dies half way through its file: the manifest still names epoch 1.
    real_copy = storage._copy_stream

    def dies_half_way(src, dst):
        dst.write(src.read(500))
        raise ConnectionResetError("upload interrupted")

    monkeypatch.setattr(storage, "_copy_stream", dies_half_way)
    with pytest.raises(ConnectionResetError):
        checkpoints.publish_checkpoint(_epoch_files(tmp_path / "e2", 2), uri, epoch=2, trial_key="k1")
    monkeypatch.setattr(storage, "_copy_stream", real_copy)
    listed = dict(storage.listing(uri))
    assert any(k.startswith("epoch-000002-") for k in listed)  # the half-written upload is there ...
    local, epoch = checkpoints.fetch_checkpoint(uri, tmp_path / "got")  # ... and not taken
    assert epoch == 1
    assert (local / "state.pt").read_bytes() == bytes([1]) * 1001

    # A completed epoch 2 replaces it, and older folders go.
    checkpoints.publish_checkpoint(_epoch_files(tmp_path / "e2", 2), uri, epoch=2, trial_key="k1")
    local, epoch = checkpoints.fetch_checkpoint(uri, tmp_path / "got")
    assert epoch == 2 and (local / "state.pt").read_bytes() == bytes([2]) * 1002
    assert {k.partition("/")[0] for k in dict(storage.listing(uri))} - {checkpoints.MANIFEST} == \
        {json.loads(storage.get_bytes(storage.join(uri, checkpoints.MANIFEST)))["dir"]}

    # A manifest whose file is truncated (or gone) names no complete checkpoint: start from scratch.
    manifest = json.loads(storage.get_bytes(storage.join(uri, checkpoints.MANIFEST)))
    storage.put_bytes(b"short", storage.join(uri, manifest["dir"], "state.pt"))
    assert checkpoints.fetch_checkpoint(uri, tmp_path / "got2") is None
    storage.put_bytes(b"{not json", storage.join(uri, checkpoints.MANIFEST))
    assert checkpoints.fetch_checkpoint(uri, tmp_path / "got3") is None


def test_a_failed_atomic_write_keeps_the_old_file(root, monkeypatch, tmp_path):
    target = storage.trial_uri(root, "k2", "model.pt")
    storage.put_bytes(b"old model", target)

    def dies(src, dst):
        dst.write(src.read(3))
        raise ConnectionResetError("upload interrupted")

    monkeypatch.setattr(storage, "_copy_stream", dies)
    source = tmp_path / "new.pt"
    source.write_bytes(b"new model, longer")
    with pytest.raises(ConnectionResetError):
        storage.put_file(source, target)
    assert storage.get_bytes(target) == b"old model"
    assert [k for k, _ in storage.listing(storage.trial_uri(root, "k2"))] == ["model.pt"]  # no temp left


# -- a campaign on S3 ----------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.ray
@pytest.mark.server
@pytest.mark.timeout(900)
def test_campaign_on_s3_storage_and_predict_from_the_uri(tmp_path, s3):
    path = grid_file(tmp_path, "s3_campaign", {"epochs": 2})
    (key,) = [s.trial_key for s in load_grid(path).expand()]
    root = f"s3://{BUCKET}/campaigns/{tmp_path.name}"
    env = {**base_env(tmp_path), "AWS_ENDPOINT_URL": s3}
    proc = cli(["campaign", "run", str(path), "--storage", root + "/"], env)
    assert proc.returncode == 0, proc.stderr[-3000:]

    model_uri = f"{root}/trials/{key}/model.pt"
    engine = sa.create_engine(env["H2OT_DB_URL"])
    with engine.connect() as conn:
        found = conn.execute(sa.text("select status, checkpoint_uri, resumed_from_epoch from trials")).all()
        campaign_storage = conn.execute(sa.text("select storage from campaigns")).scalar_one()
    engine.dispose()
    assert [tuple(r) for r in found] == [("complete", model_uri, 0)]
    assert campaign_storage == root

    files = dict(storage.listing(root))
    assert files[f"trials/{key}/model.pt"] > 0
    manifest = json.loads(storage.get_bytes(f"{root}/trials/{key}/checkpoint/MANIFEST.json"))
    assert manifest["epoch"] == 2 and manifest["trial_key"] == key
    assert f"trials/{key}/checkpoint/{manifest['dir']}/state.pt" in files
    assert any(k.startswith("ray/s3_campaign/") for k in files)  # Ray's experiment folder
    assert not (tmp_path / "runs" / "trials").exists()  # nothing of the trial on this machine's disk
    assert list((tmp_path / "scratch").iterdir()) == []  # the worker's scratch folder is cleaned up

    x = np.random.default_rng(0).normal(size=(2, 27, 17, 2)).astype(np.float32)
    np.save(tmp_path / "in.npy", x)
    proc = cli(["predict", model_uri, str(tmp_path / "in.npy"), str(tmp_path / "out.npy")], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = np.load(tmp_path / "out.npy")
    assert out.shape == (2, 27, 17, 3) and np.isfinite(out).all()
    proc = cli(["evaluate", model_uri, "--batch-size", "4"], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "mpjpe" in proc.stdout.lower()
    proc = cli(["predict", f"{root}/trials/nope/model.pt", str(tmp_path / "in.npy"), str(tmp_path / "o.npy")], env)
    assert proc.returncode == 2
    assert one_line_error(proc.stderr) == f"Error: {root}/trials/nope/model.pt: no such checkpoint in the storage"

    # --rerun trains again from scratch: it does not "resume" after the stored last epoch (training nothing).
    before = storage.get_bytes(f"{root}/trials/{key}/checkpoint/MANIFEST.json")
    proc = cli(["campaign", "run", str(path), "--storage", root, "--rerun"], env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    engine = sa.create_engine(env["H2OT_DB_URL"])
    with engine.connect() as conn:
        found = conn.execute(sa.text("select status, epochs_run, resumed_from_epoch from trials")).all()
    engine.dispose()
    assert [tuple(r) for r in found] == [("complete", 2, 0)]
    assert storage.get_bytes(f"{root}/trials/{key}/checkpoint/MANIFEST.json") != before  # a new upload


def test_discard_checkpoints_removes_only_the_named_trials(tmp_path):
    root = str(tmp_path / "store")
    for key in ("a", "b"):
        checkpoints.publish_checkpoint(_epoch_files(tmp_path / key, 1), storage.trial_uri(root, key, "checkpoint"),
                                   epoch=1, trial_key=key)
        storage.put_bytes(b"model", storage.trial_uri(root, key, "model.pt"))
    checkpoints.discard_checkpoints(root, ["a", "missing"])
    assert checkpoints.read_manifest(storage.trial_uri(root, "a", "checkpoint")) is None
    assert checkpoints.read_manifest(storage.trial_uri(root, "b", "checkpoint"))["epoch"] == 1
    assert storage.exists(storage.trial_uri(root, "a", "model.pt"))


def test_a_cluster_upload_keeps_every_package_file_and_drops_the_datasets_folder():
    """Ray matches ``excludes`` as gitignore patterns against the working directory: a bare ``data`` once dropped
    the package ``h2ot_core/data`` too, and every trial of a submitted job failed with ModuleNotFoundError."""
    from ray._private.thirdparty.pathspec import PathSpec

    from orchestrator.cluster import UPLOAD_EXCLUDES
    from orchestrator.provenance import REPO_ROOT

    spec = PathSpec.from_lines("gitwildmatch", UPLOAD_EXCLUDES)
    sources = [p.relative_to(REPO_ROOT).as_posix() for pkg in ("orchestrator", "h2ot_core", "results", "search_spaces")
               for p in (REPO_ROOT / pkg).rglob("*") if p.is_file() and "__pycache__" not in p.parts
               and not p.is_relative_to(REPO_ROOT / "results" / "runs")]  # what the commands wrote
    assert any(s.startswith("h2ot_core/data/") for s in sources)
    assert [s for s in sources if spec.match_file(s)] == []
    assert spec.match_file("data/h36m/data_3d_h36m.npz") and spec.match_file("results/runs/leaderboard.sqlite")
    assert spec.match_file(".venv/bin/python") and spec.match_file("paper_tables/t.md")
