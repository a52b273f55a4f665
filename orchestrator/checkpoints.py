"""A trial's folder in the campaign storage (:mod:`orchestrator.storage`): its epoch checkpoints and its model.

Layout, keyed by ``trial_key``::

    <storage>/trials/<key>/checkpoint/MANIFEST.json the latest complete epoch: {"epoch", "dir", "files"}
    <storage>/trials/<key>/checkpoint/epoch-000003-<id>/ that epoch's files (state.pt)
    <storage>/trials/<key>/model.pt                 the selected weights (the leaderboard's checkpoint_uri)

A checkpoint is published files first, manifest last (:func:`publish_checkpoint`); a reader trusts only what
a manifest lists, with the sizes it records (:func:`fetch_checkpoint`), so a half-uploaded epoch is never
taken for a complete one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator import storage

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"
MODEL_FILE = "model.pt"
MANIFEST = "MANIFEST.json"
MANIFEST_FORMAT = "h2ot-checkpoint-manifest"


def _epoch_dir(epoch: int) -> str:
    return f"epoch-{epoch:06d}"


def publish_checkpoint(local_dir: str | Path, uri: str, *, epoch: int, trial_key: str) -> None:
    """Publish the epoch checkpoint in ``local_dir`` under the checkpoint directory ``uri``.

    Files go to ``<uri>/epoch-<N>-<id>/`` first; then ``MANIFEST.json`` (epoch, folder, file sizes) replaces the
    previous one atomically; only then are older epoch folders removed. A crash at any point leaves the
    previous manifest, and the files it lists, intact.
    """
    # A folder of its own per upload: re-publishing an epoch (a retry) never touches the files the current
    # manifest lists.
    folder = f"{_epoch_dir(epoch)}-{uuid.uuid4().hex[:8]}"
    files = storage.put_dir(local_dir, storage.join(uri, folder))
    manifest = {"format": MANIFEST_FORMAT, "version": 1, "trial_key": trial_key, "epoch": int(epoch),
                "dir": folder, "files": files}
    storage.put_bytes(json.dumps(manifest, sort_keys=True).encode(), storage.join(uri, MANIFEST))
    stale = {rel.partition("/")[0] for rel, _ in storage.listing(uri) if "/" in rel} - {folder}
    for top in sorted(stale):
        if top.startswith("epoch-"):
            with contextlib.suppress(OSError):
                storage.delete_dir(storage.join(uri, top))


def read_manifest(uri: str) -> dict[str, Any] | None:
    """The manifest of the checkpoint directory ``uri`` when it lists a complete checkpoint, else ``None``.

    Complete: the manifest parses and every file it lists exists with the size it records. Anything else (no
    manifest, a foreign or truncated file) is logged and ignored: the trial then starts from scratch.
    """
    manifest_uri = storage.join(uri, MANIFEST)
    try:
        if storage.size(manifest_uri) is None:
            return None
        manifest = json.loads(storage.get_bytes(manifest_uri))
        if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
            log.warning("%s: not an H2OT checkpoint manifest; ignored", manifest_uri)
            return None
        for rel, expected in dict(manifest["files"]).items():
            found = storage.size(storage.join(uri, manifest["dir"], rel))
            if found != expected:
                log.warning("%s: %s/%s is %s bytes, the manifest says %s; checkpoint ignored", uri,
                            manifest["dir"], rel, found, expected)
                return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("%s: unreadable checkpoint manifest (%s); ignored", uri, storage.first_line(exc))
        return None
    return manifest


def fetch_checkpoint(uri: str, local_dir: str | Path) -> tuple[Path, int] | None:
    """Download the complete checkpoint under ``uri`` into ``local_dir``: ``(local_dir, epoch)``, or ``None``."""
    manifest = read_manifest(uri)
    if manifest is None:
        return None
    local_dir = Path(local_dir)
    if local_dir.exists():
        shutil.rmtree(local_dir)
    for rel in manifest["files"]:
        storage.get_file(storage.join(uri, manifest["dir"], rel), local_dir / rel)
    return local_dir, int(manifest["epoch"])


def discard_checkpoints(root: str | None, trial_keys: list[str]) -> None:
    """Remove the epoch checkpoints of ``trial_keys`` (``--rerun``: train again from scratch, not resume)."""
    root = storage.resolve(root)
    for key in trial_keys:
        storage.delete_dir(storage.trial_uri(root, key, CHECKPOINT_DIR))


@dataclass(frozen=True)
class TrialStorage:
    """The storage folder of one trial: ``<root>/trials/<trial_key>``."""

    root: str
    trial_key: str

    @property
    def uri(self) -> str:
        return storage.trial_uri(self.root, self.trial_key)

    @property
    def checkpoint(self) -> str:
        return storage.join(self.uri, CHECKPOINT_DIR)

    @property
    def model(self) -> str:
        return storage.join(self.uri, MODEL_FILE)
