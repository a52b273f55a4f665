"""Every environment variable H2OT Lab reads, declared once: name, default, what it does, where it travels.

A :class:`Setting` says whether it goes to every Ray worker of a campaign (``workers``: the runtime_env of the
Ray session) and whether it goes with a campaign submitted as a Ray job (``job``: the job's runtime_env, which
is also what that job's workers inherit, so every worker setting is a job setting too), and whether its value
may carry a credential (``secret``: masked wherever it is shown). The forwarding lists, the CLI's ``envvar=``
options, ``h2ot config`` and the README's table are all derived from :data:`SETTINGS`.

Torch-free and dependency-free, so every package (and ``h2ot config``) reads it cheaply. Credentials themselves
(``AWS_SECRET_ACCESS_KEY``, a database password in ``~/.pgpass``) are read by the libraries that use them and are
not declared here: H2OT Lab never reads, forwards or prints them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from h2ot_core.errors import ConfigError
from h2ot_core.registry import unknown_message

#: the repository root (the parent of the ``h2ot_core`` package)
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Setting:
    """One environment variable.

    Attributes:
        name: the variable (``H2OT_DB_URL``).
        default: what applies when it is unset or blank: text, or a function computing it (a path under the
            runs folder, described by ``default_doc``); ``None``: unset means "not used" (no address: a local
            Ray instance).
        doc: what it does, one sentence (the README table and ``h2ot config`` show it).
        group: the section it belongs to (``paths``, ``leaderboard``, ``tracking``, ``cluster``, ``trials``, ``serve``).
        workers: forwarded to every Ray worker of a campaign when set on the driver.
        job: sent with ``h2ot campaign submit`` to the Ray job (its driver and its workers) when set.
        secret: the value may carry a password (a URL's ``user:password@``): masked when shown.
        token: the whole value is a credential (an access token): shown as ``***`` when set.
    """

    name: str
    default: str | Callable[[], str] | None
    doc: str
    group: str
    workers: bool = False
    job: bool = False
    secret: bool = False
    token: bool = False
    default_doc: str = ""

    def raw(self) -> str | None:
        """The value set in this process's environment, stripped; ``None`` when unset or blank."""
        value = os.environ.get(self.name, "").strip()
        return value or None

    def default_value(self) -> str | None:
        return self.default() if callable(self.default) else self.default

    def value(self) -> str | None:
        """The effective value: the environment's, else the default (``None``: not set and no default)."""
        return self.raw() or self.default_value()

    def number(self, *, minimum: float = 0.0, what: str = "a number") -> float:
        """The effective value as a number ``>= minimum``; a bad value is a :class:`ConfigError` naming it."""
        text = self.value()
        try:
            number = float(text) if text is not None else float("nan")
        except ValueError:
            number = float("nan")
        if not number >= minimum:
            raise ConfigError(f"{self.name}={self.raw()!r}: expected {what} >= {minimum:g}")
        return number

    def shown(self) -> str:
        """The effective value for display: a secret's password masked; empty when unset without default."""
        value = self.value()
        if value is None:
            return ""
        if self.token:
            return "***"
        return mask_secret(value) if self.secret else value


def mask_secret(value: str) -> str:
    """``value`` with a URL's password replaced by ``***`` (``postgresql://me:***@db/h2ot``); a value that is
    not a URL with a password is returned as is."""
    try:
        parts = urlsplit(value)
        if parts.password is None:
            return value
        host = parts.hostname or ""
        netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
        return urlunsplit(parts._replace(netloc=netloc))
    except ValueError:
        return "<unparseable URL>"


def runs_dir() -> Path:
    """Where the commands write: ``$H2OT_RUNS_DIR``, else ``<repo>/results/runs`` (absolute).

    The default leaderboard ``leaderboard.sqlite``, the local MLflow store ``mlflow.db`` and ``mlartifacts/``,
    Ray storage ``ray/`` and trial checkpoints ``trials/`` all live under it.
    """
    return Path(RUNS_DIR.value() or "").expanduser().resolve()


RUNS_DIR = Setting(
    "H2OT_RUNS_DIR", lambda: str(REPO_ROOT / "results" / "runs"), "where the commands write: the default "
    "leaderboard, the local MLflow store, Ray's folders and trial checkpoints", "paths", job=True,
    default_doc="`results/runs`")
DB_URL = Setting(
    "H2OT_DB_URL", lambda: f"sqlite:///{runs_dir() / 'leaderboard.sqlite'}", "the leaderboard: sqlite:///PATH "
    "or postgresql+psycopg://USER@HOST/DB (same as --db-url)", "leaderboard", job=True, secret=True,
    default_doc="`leaderboard.sqlite` in the runs folder")
DB_RETRY_S = Setting(
    "H2OT_DB_RETRY_S", "60", "seconds a leaderboard write keeps retrying while the database cannot be "
    "reached (a server restart)", "leaderboard", job=True)
CLAIM_LEASE_S = Setting(
    "H2OT_CLAIM_LEASE_S", "60", "seconds a driver's claim on a trial lasts unless renewed (every third of it); a "
    "claim of a driver gone that long is taken over by the next campaign that needs the trial", "leaderboard",
    job=True)
MLFLOW_TRACKING_URI = Setting(
    "MLFLOW_TRACKING_URI", lambda: f"sqlite:///{runs_dir() / 'mlflow.db'}", "the MLflow tracking store: a "
    "tracking server's http(s):// URL, or a local SQLite file", "tracking", job=True, secret=True,
    default_doc="`mlflow.db` in the runs folder")
MLFLOW_HTTP_RETRIES = Setting(
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2", "MLflow client: retries of a failed request (MLflow's own default, 7 "
    "over about 4 minutes, would stall a campaign; a value exported wins)", "tracking", job=True)
MLFLOW_HTTP_BACKOFF = Setting(
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1", "MLflow client: seconds of back-off between retries, doubling",
    "tracking", job=True)
MLFLOW_HTTP_TIMEOUT = Setting(
    "MLFLOW_HTTP_REQUEST_TIMEOUT", "20", "MLflow client: seconds per request (MLflow's default: 120)", "tracking",
    job=True)
MLFLOW_PROBE_S = Setting(
    "H2OT_MLFLOW_PROBE_S", "30", "seconds between probes of a tracking server found down", "tracking", job=True)
STORAGE = Setting(
    "H2OT_STORAGE", lambda: str(runs_dir()), "where checkpoints, models and Ray's folders live: a shared path, "
    "s3://bucket/prefix or gs://bucket/prefix (same as --storage)", "paths", job=True,
    default_doc="the runs folder")
DATA_DIR = Setting(
    "H2OT_DATA_DIR", None, "the datasets' root on every node: one folder per dataset (h36m/, mpi_inf_3dhp/)",
    "trials", workers=True, job=True)
CACHE = Setting(
    "H2OT_CACHE", lambda: str(Path.home() / ".cache" / "h2ot"), "where generated data (synthetic), downloaded detector weights and `campaign estimate` timings are cached",
    "trials", workers=True, job=True, default_doc="`~/.cache/h2ot`")
SCRATCH_DIR = Setting(
    "H2OT_SCRATCH_DIR", lambda: str(Path(tempfile.gettempdir()) / "h2ot-scratch"), "the node-local folder "
    "trials train in before each epoch is uploaded to the storage", "trials", workers=True, job=True,
    default_doc="`h2ot-scratch` in the temp folder")
OMP_NUM_THREADS = Setting(
    "OMP_NUM_THREADS", None, "OpenMP threads per process (torch's CPU kernels)", "trials", workers=True, job=True)
ALLOW_SLOW_BF16 = Setting(
    "H2OT_ALLOW_SLOW_BF16", None, "1: run bf16 on a CPU without bf16 kernels anyway (slow; to check numerics)",
    "trials", workers=True, job=True)
DETECTOR_WEIGHTS = Setting(
    "H2OT_DETECTOR_WEIGHTS", None, "a folder holding the 2D detector's .onnx files for `h2ot video` (offline "
    "nodes; same as --detector-weights)", "paths")
SERVE_TOKEN = Setting(
    "H2OT_SERVE_TOKEN", None, "the access token `h2ot serve` requires (same as --token; required off loopback)",
    "serve", token=True)
XDG_CACHE_HOME = Setting(
    "XDG_CACHE_HOME", lambda: str(Path.home() / ".cache"), "the user's cache folder: `h2ot video` reuses detector "
    "weights that rtmlib downloaded under rtmlib/hub/checkpoints in it", "paths", default_doc="`~/.cache`")
PROGRESS_INTERVAL_S = Setting(
    "H2OT_PROGRESS_INTERVAL_S", "30", "seconds between two status lines of `campaign run` and `train` when stderr "
    "is not a terminal (a log)", "cluster", job=True)
TUNE_CHUNK = Setting(
    "H2OT_TUNE_CHUNK", "500", "most trials one Tuner.fit is given; a longer campaign is submitted in chunks",
    "cluster", job=True)
RAY_DASHBOARD = Setting(
    "H2OT_RAY_DASHBOARD", "1", "1: a local Ray instance serves Ray's own dashboard on 127.0.0.1 (its URL is "
    "printed) when ray[default] is installed; 0: none (a few seconds faster to start)", "cluster")
RAY_ADDRESS = Setting(
    "RAY_ADDRESS", None, "the Ray cluster `campaign run` joins (auto or HOST:6379; a Ray job's driver has it), "
    "or the dashboard the job commands talk to (http://HEAD:8265)", "cluster")
H2OT_RAY_ADDRESS = Setting(
    "H2OT_RAY_ADDRESS", None, "an alias of RAY_ADDRESS, read after it", "cluster")
RAY_API_SERVER_ADDRESS = Setting(
    "RAY_API_SERVER_ADDRESS", None, "the Ray dashboard the job commands talk to, read before RAY_ADDRESS",
    "cluster")
AWS_ENDPOINT_URL_S3 = Setting(
    "AWS_ENDPOINT_URL_S3", None, "an S3-compatible server for s3:// storage (MinIO, Ceph); workers on other "
    "nodes get the driver's", "paths", job=True)
AWS_ENDPOINT_URL = Setting(
    "AWS_ENDPOINT_URL", None, "the same, for every AWS service (read after AWS_ENDPOINT_URL_S3)", "paths", job=True)
AWS_REGION = Setting("AWS_REGION", None, "the S3 bucket's region", "paths", job=True)
AWS_DEFAULT_REGION = Setting(
    "AWS_DEFAULT_REGION", None, "the same (read after AWS_REGION; default us-east-1)", "paths", job=True)

#: every setting, in the order ``h2ot config`` and the README list them
SETTINGS: tuple[Setting, ...] = (
    RUNS_DIR, DB_URL, DB_RETRY_S, CLAIM_LEASE_S, MLFLOW_TRACKING_URI, MLFLOW_PROBE_S, MLFLOW_HTTP_RETRIES, MLFLOW_HTTP_BACKOFF,
    MLFLOW_HTTP_TIMEOUT, STORAGE, AWS_ENDPOINT_URL_S3,
    AWS_ENDPOINT_URL, AWS_REGION, AWS_DEFAULT_REGION, DATA_DIR, CACHE, SCRATCH_DIR, OMP_NUM_THREADS,
    ALLOW_SLOW_BF16, DETECTOR_WEIGHTS, XDG_CACHE_HOME, SERVE_TOKEN, PROGRESS_INTERVAL_S, TUNE_CHUNK, RAY_DASHBOARD, RAY_ADDRESS, H2OT_RAY_ADDRESS, RAY_API_SERVER_ADDRESS,
)
#: where a cluster address comes from when ``--address`` is not given, first set wins: Ray's own variable (the
#: job supervisor sets it for every Ray job's driver), then ours, an alias kept for existing set-ups
ADDRESS_SETTINGS: tuple[Setting, ...] = (RAY_ADDRESS, H2OT_RAY_ADDRESS)
#: the dashboard address, first set wins (Ray's own first)
DASHBOARD_SETTINGS: tuple[Setting, ...] = (RAY_API_SERVER_ADDRESS, *ADDRESS_SETTINGS)
#: MLflow's HTTP client settings, set for this process (values the user exported win)
MLFLOW_HTTP_SETTINGS: tuple[Setting, ...] = (MLFLOW_HTTP_RETRIES, MLFLOW_HTTP_BACKOFF, MLFLOW_HTTP_TIMEOUT)
#: storage settings a worker on another node needs to reach the driver's S3-compatible server (never credentials)
STORAGE_SETTINGS: tuple[Setting, ...] = (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, AWS_REGION, AWS_DEFAULT_REGION)


def _set(settings: tuple[Setting, ...]) -> dict[str, str]:
    return {s.name: value for s in settings if (value := s.raw()) is not None}


def worker_env() -> dict[str, str]:
    """The ``workers`` settings set here: the env vars of every Ray worker of a campaign."""
    return _set(tuple(s for s in SETTINGS if s.workers))


def job_env() -> dict[str, str]:
    """The ``job`` settings set here: the env vars of a campaign submitted as a Ray job."""
    return _set(tuple(s for s in SETTINGS if s.job))


def storage_env() -> dict[str, str]:
    """The :data:`STORAGE_SETTINGS` set here (a worker fills in what its own node lacks)."""
    return _set(STORAGE_SETTINGS)


def setting(name: str) -> Setting:
    """The setting called ``name``."""
    found = {s.name: s for s in SETTINGS}
    if name not in found:
        raise ConfigError(unknown_message("setting", name, list(found)))
    return found[name]


def markdown_table() -> str:
    """The README's table of settings (``make readme`` copies it in; a test checks it is current)."""
    rows = ["| variable | default | to workers | to a submitted job | what it does |", "|---|---|---|---|---|"]
    for s in SETTINGS:
        literal = f"`{s.default}`" if isinstance(s.default, str) else "—"
        default = s.default_doc if callable(s.default) else literal
        rows.append(f"| `{s.name}` | {default} | {'yes' if s.workers else ''} | {'yes' if s.job else ''} | "
                    f"{s.doc}{' (credentials masked when shown)' if s.secret else ''} |")
    return "\n".join(rows)
