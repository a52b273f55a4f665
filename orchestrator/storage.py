"""Campaign storage: where Ray's experiment folders, trial checkpoints and final models live.

A storage is named by one URI: a local or network path (``/mnt/shared/h2ot``, ``file:///...``), or a bucket
prefix ``s3://bucket/prefix`` / ``gs://bucket/prefix`` reached through :mod:`pyarrow.fs`. The default is the
runs folder (``H2OT_RUNS_DIR`` or ``results/runs``); ``H2OT_STORAGE`` overrides it. An S3 endpoint other than
AWS comes from the standard ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL``; credentials from the standard
AWS variables (or the node's role), read by the AWS SDK itself and never by this module.

Layout, keyed by ``trial_key``::

    <storage>/ray/<campaign>/...                    Ray Tune's experiment folders
    <storage>/trials/<key>/checkpoint/MANIFEST.json the latest complete epoch: {"epoch", "dir", "files"}
    <storage>/trials/<key>/checkpoint/epoch-000003-<id>/ that epoch's files (state.pt)
    <storage>/trials/<key>/model.pt                 the selected weights (the leaderboard's checkpoint_uri)
    <storage>/trials/<key>/worker.pid               which process trains the trial now (for operators)

Epoch checkpoints and the trial folder: :mod:`orchestrator.checkpoints`. Single files (the manifest, the model) are replaced atomically: written under a
temporary name, then renamed (a server-side copy on a bucket).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from h2ot_core.environment import (
    AWS_DEFAULT_REGION,
    AWS_ENDPOINT_URL,
    AWS_ENDPOINT_URL_S3,
    AWS_REGION,
    STORAGE,
)
from h2ot_core.errors import H2OTError

log = logging.getLogger(__name__)

#: schemes a storage URI may have (no scheme: a local or network path)
SCHEMES = ("file", "s3", "gs", "gcs")
REMOTE_SCHEMES = ("s3", "gs", "gcs")
TRIALS_DIR = "trials"
RAY_DIR = "ray"
#: bytes per read/write when streaming a file to or from storage
CHUNK = 8 << 20

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_HOW = "use a local or network path, s3://bucket/prefix or gs://bucket/prefix"


class StorageError(H2OTError):
    """A storage URI that cannot be used: unknown scheme, malformed, unreachable or not writable."""


def scheme(uri: str) -> str:
    """``s3``, ``gs``, ``file`` ... of ``uri``; ``""`` for a plain path."""
    match = _SCHEME.match(uri)
    return match.group(1).lower() if match else ""


def is_remote(uri: str) -> bool:
    """Whether ``uri`` names a bucket (not a path on this machine's file system)."""
    return scheme(uri) in REMOTE_SCHEMES


def normalize(uri: str) -> str:
    """The canonical form of a storage URI: an absolute path, or ``scheme://bucket/prefix`` without a trailing
    slash. An unknown scheme or a bucket URI without a bucket is a :class:`StorageError`."""
    text = str(uri).strip()
    if not text:
        raise StorageError(f"storage {uri!r}: empty; {_HOW}")
    found = scheme(text)
    if found and found not in SCHEMES:
        raise StorageError(f"storage {text!r}: unknown scheme {found!r}; {_HOW}")
    if found == "file":
        text = text[len("file://"):]
        if not text.startswith("/"):
            raise StorageError(f"storage {uri!r}: a file:// URI needs an absolute path (file:///...)")
    if found in REMOTE_SCHEMES:
        rest = text[len(found) + 3:].rstrip("/")
        if not rest or rest.startswith("/") or "?" in rest:
            raise StorageError(f"storage {text!r}: expected {found}://bucket/prefix (a bucket name, no query "
                               f"string; the endpoint comes from AWS_ENDPOINT_URL)")
        return f"{found}://{rest}"
    return str(Path(text).expanduser().resolve())


def resolve(uri: str | None = None) -> str:
    """``uri``, else ``$H2OT_STORAGE``, else the runs folder; normalised (:func:`normalize`)."""
    return normalize(uri or str(STORAGE.value()))


def join(uri: str, *parts: str) -> str:
    """``uri`` with ``parts`` appended, ``/``-separated (a path stays a plain path)."""
    clean = [p.strip("/") for p in parts if p and p.strip("/")]
    return "/".join([uri.rstrip("/"), *clean]) if clean else uri


def trial_uri(root: str, trial_key: str, *parts: str) -> str:
    """``<root>/trials/<trial_key>/<parts...>``."""
    return join(root, TRIALS_DIR, trial_key, *parts)


def s3_endpoint() -> str | None:
    """The S3 endpoint of the environment: ``AWS_ENDPOINT_URL_S3``, else ``AWS_ENDPOINT_URL`` (None: AWS)."""
    return AWS_ENDPOINT_URL_S3.raw() or AWS_ENDPOINT_URL.raw()


def filesystem(uri: str) -> tuple[Any, str]:
    """``(pyarrow FileSystem, path inside it)`` for a normalised URI."""
    import pyarrow.fs as pafs

    found = scheme(uri)
    if found == "s3":
        path = uri[len("s3://"):]
        endpoint = s3_endpoint()
        if endpoint is None:  # AWS itself: let pyarrow resolve the bucket's region
            try:
                fs, _ = pafs.FileSystem.from_uri(uri)
            except (OSError, ValueError) as exc:
                raise StorageError(f"storage {uri}: {first_line(exc)}; check the bucket name, AWS_REGION "
                                   f"and the AWS credentials (or set AWS_ENDPOINT_URL)") from None
            return fs, path
        region = AWS_REGION.raw() or AWS_DEFAULT_REGION.raw() or "us-east-1"
        fs = pafs.S3FileSystem(endpoint_override=endpoint, region=region, connect_timeout=10,
                               retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=3))
        return fs, path
    if found in ("gs", "gcs"):
        try:
            fs, path = pafs.FileSystem.from_uri(uri)
        except (OSError, ValueError) as exc:
            raise StorageError(f"storage {uri}: {first_line(exc)}; check the bucket and the Google "
                               f"credentials (GOOGLE_APPLICATION_CREDENTIALS)") from None
        return fs, path
    return pafs.LocalFileSystem(), uri


def tune_storage(uri: str) -> tuple[str, Any]:
    """``(storage_path, storage_filesystem)`` for Ray Tune's RunConfig: ``<storage>/ray``."""
    ray_uri = join(uri, RAY_DIR)
    if not is_remote(ray_uri):
        return ray_uri, None
    fs, path = filesystem(ray_uri)
    return path, fs


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _fail(uri: str, what: str, exc: BaseException) -> StorageError:
    hint = ""
    if scheme(uri) == "s3":
        endpoint = s3_endpoint()
        hint = (f"; check that the bucket exists, the endpoint ({endpoint or 'AWS'}; AWS_ENDPOINT_URL) answers "
                f"and AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are set")
    elif scheme(uri) in ("gs", "gcs"):
        hint = "; check the bucket and GOOGLE_APPLICATION_CREDENTIALS"
    else:
        hint = "; check that the folder exists or can be created and is writable (--storage or H2OT_STORAGE)"
    return StorageError(f"storage {uri}: cannot {what} ({first_line(exc)}){hint}")


def check(uri: str | None = None) -> str:
    """Prove the storage usable before anything starts: write and delete a small marker object under it.

    ``uri`` is resolved first (:func:`resolve`: ``None`` means ``H2OT_STORAGE`` or the runs folder). Returns
    the normalised URI; an unknown scheme or storage that cannot be reached or written is one
    :class:`StorageError` line naming the storage and how to fix it. Leaves nothing behind.
    """
    uri = resolve(uri)
    marker = join(uri, f".h2ot-write-check-{uuid.uuid4().hex[:12]}")
    try:
        fs, path = filesystem(marker)
        if not is_remote(uri):
            Path(uri).mkdir(parents=True, exist_ok=True)
        with fs.open_output_stream(path) as out:
            out.write(b"h2ot storage check\n")
        fs.delete_file(path)
    except StorageError:
        raise
    except Exception as exc:  # pyarrow raises OSError for most, ArrowInvalid (ValueError) for some
        raise _fail(uri, "write a test object", exc) from None
    return uri


# -- files and directories ---------------------------------------------------------------------------------

def exists(uri: str) -> bool:
    import pyarrow.fs as pafs

    fs, path = filesystem(uri)
    return fs.get_file_info(path).type != pafs.FileType.NotFound


def size(uri: str) -> int | None:
    """Size of the file at ``uri`` (``None`` when there is no such file)."""
    import pyarrow.fs as pafs

    fs, path = filesystem(uri)
    info = fs.get_file_info(path)
    return info.size if info.type == pafs.FileType.File else None


@contextlib.contextmanager
def open_input(uri: str) -> Iterator[Any]:
    """A readable binary stream of the file at ``uri``."""
    fs, path = filesystem(uri)
    with fs.open_input_stream(path) as stream:
        yield stream


@contextlib.contextmanager
def open_output(uri: str) -> Iterator[Any]:
    """A writable binary stream to ``uri`` (parents created); not atomic on a file system: see :func:`put_file`."""
    fs, path = filesystem(uri)
    if not is_remote(uri):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    with fs.open_output_stream(path) as stream:
        yield stream


def _copy_stream(src: Any, dst: Any) -> None:
    while chunk := src.read(CHUNK):
        dst.write(chunk)


def _replace(uri: str, write: Any) -> None:
    """Run ``write(stream)`` into ``uri`` so that readers see the old file or the new one, never half.

    The data goes to a temporary name beside ``uri`` first, then is renamed over it: a rename on a file
    system, a server-side copy on a bucket (an object appears whole or not at all). A temporary object left
    by a failed write is deleted; one left by a killed process is never read (readers go by name).
    """
    parent, _, name = uri.rpartition("/")
    tmp = join(parent, f".{name}.{uuid.uuid4().hex[:8]}.tmp")
    fs, tmp_path = filesystem(tmp)
    try:
        with open_output(tmp) as out:
            write(out)
        if is_remote(uri):
            fs.move(tmp_path, filesystem(uri)[1])
        else:
            os.replace(tmp_path, uri)
    except BaseException:
        with contextlib.suppress(OSError):
            fs.delete_file(tmp_path)
        raise


def put_bytes(data: bytes, uri: str) -> None:
    """Write ``data`` to ``uri`` atomically."""
    _replace(uri, lambda out: out.write(data))


def get_bytes(uri: str) -> bytes:
    with open_input(uri) as stream:
        return stream.read()


def put_file(local: str | Path, uri: str) -> None:
    """Upload (or copy) the local file ``local`` to ``uri`` atomically."""
    with open(local, "rb") as src:
        _replace(uri, lambda out: _copy_stream(src, out))


def get_file(uri: str, local: str | Path) -> Path:
    """Download (or copy) the file at ``uri`` to ``local``; returns ``local``."""
    local = Path(local)
    local.parent.mkdir(parents=True, exist_ok=True)
    with open_input(uri) as src, open(local, "wb") as dst:
        _copy_stream(src, dst)
    return local


def listing(uri: str) -> list[tuple[str, int]]:
    """``(relative path, size)`` of every file under the directory ``uri`` (empty if there is none)."""
    import pyarrow.fs as pafs

    fs, path = filesystem(uri)
    infos = fs.get_file_info(pafs.FileSelector(path, recursive=True, allow_not_found=True))
    base = path.rstrip("/") + "/"
    return sorted((i.path[len(base):], i.size) for i in infos if i.type == pafs.FileType.File)


def put_dir(local_dir: str | Path, uri: str) -> dict[str, int]:
    """Upload every file under ``local_dir`` to the directory ``uri``; returns ``{relative path: size}``."""
    local_dir = Path(local_dir)
    sent: dict[str, int] = {}
    for file in sorted(p for p in local_dir.rglob("*") if p.is_file()):
        rel = file.relative_to(local_dir).as_posix()
        with open(file, "rb") as src, open_output(join(uri, rel)) as out:
            _copy_stream(src, out)
        sent[rel] = file.stat().st_size
    return sent


def get_dir(uri: str, local_dir: str | Path) -> Path:
    """Download every file under the directory ``uri`` into ``local_dir``; returns ``local_dir``."""
    local_dir = Path(local_dir)
    for rel, _ in listing(uri):
        get_file(join(uri, rel), local_dir / rel)
    return local_dir


def delete_dir(uri: str) -> None:
    """Remove the directory ``uri`` and everything under it (nothing when it does not exist)."""
    fs, path = filesystem(uri)
    with contextlib.suppress(FileNotFoundError):
        fs.delete_dir(path)


@contextlib.contextmanager
def local_copy(uri: str | Path, what: str = "file") -> Iterator[Path]:
    """A local path to read ``uri`` from: the path itself, or a temporary download of a bucket object.

    A missing object is a one-line :class:`StorageError` naming it.
    """
    text = str(uri)
    if not _SCHEME.match(text):
        yield Path(text)
        return
    uri = normalize(text)
    if not is_remote(uri):
        yield Path(uri)
        return
    try:
        if size(uri) is None:
            raise StorageError(f"{uri}: no such {what} in the storage")
        with tempfile.TemporaryDirectory(prefix="h2ot-download-") as tmp:
            local = get_file(uri, Path(tmp) / Path(uri).name)
            yield local
    except StorageError:
        raise
    except OSError as exc:
        raise _fail(uri, f"read the {what}", exc) from None
