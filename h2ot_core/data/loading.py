"""``load_dataset``: a dataset by registry name, with a content fingerprint for provenance."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from h2ot_core.data.base import PoseData
from h2ot_core.environment import DATA_DIR
from h2ot_core.errors import DataError
from h2ot_core.names import DATASETS


def fingerprint(data: PoseData) -> str:
    """Short sha256 over every sequence's identity and array bytes, train then test (16 hex digits)."""
    digest = hashlib.sha256()
    for split in (data.train, data.test):
        digest.update(f"|{len(split)}|".encode())
        for seq in split:
            digest.update(f"{seq.subject}/{seq.action}/{seq.camera}".encode())
            for array in (seq.pose2d, seq.pose3d, seq.valid):
                if array is not None:
                    digest.update(np.ascontiguousarray(array).tobytes())
    return digest.hexdigest()[:16]


def load_dataset(name: str, data_dir: str | Path | None = None, **options: object) -> PoseData:
    """Read dataset ``name`` (``h2ot ls``) from ``data_dir`` with reader ``options`` (e.g. ``source``).

    ``data_dir`` may be omitted only for self-contained datasets (:attr:`DatasetInfo.self_contained`:
    ``synthetic``, ``mocap_clips``).
    """
    info = DATASETS.info(name)
    if data_dir is None and not info.self_contained:
        raise DataError(f"dataset {name!r} needs a data folder holding {', '.join(info.files)}; none was given: "
                        f"pass --data-dir DIR (h2ot train, evaluate), or set {DATA_DIR.name} to the folder "
                        f"holding {name}/ (every command and campaign)")
    loader = DATASETS.get(name)
    data = loader(Path(data_dir) if data_dir is not None else None, **options)
    data.fingerprint = fingerprint(data)
    return data
