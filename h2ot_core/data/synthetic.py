"""The ``synthetic`` dataset: synthetic Human3.6M files, generated on first use, read by the real reader.

The files are cached in ``data_dir`` or ``$H2OT_CACHE/synthetic/seed{S}_min{M}`` (default cache root
``~/.cache/h2ot``) and then read with :func:`h2ot_core.data.h36m.load_h36m`, the same code as real
data. The generator's per-frame labels are exposed in ``PoseData.extras``:

* ``extras["labels"]``: ``{(subject, action): {"speed": [T] m/s, "segment": [T] int8}}`` (the same for
  every camera of that action);
* ``extras["segment_names"]``: the label names, indexed by ``segment``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from h2ot_core.data.base import PoseData
from h2ot_core.data.checks import expect_array, expect_dict, key_path
from h2ot_core.data.h36m import load_h36m
from h2ot_core.data.npz import load_npz_key
from h2ot_core.data.synth import FILE_LABELS, write_synthetic
from h2ot_core.environment import CACHE


def cache_dir(seed: int, minutes: float) -> Path:
    """Where generated files live when no ``data_dir`` is given."""
    root = Path(str(CACHE.value()))
    return root / "synthetic" / f"seed{seed}_min{minutes:g}"


def read_labels(path: Path) -> tuple[dict[tuple[str, str], dict[str, np.ndarray]], list[str]]:
    """Per-frame speed and segment labels of a generated folder's ``synthetic_labels.npz``."""
    labels = expect_dict(load_npz_key(path, "labels"), path, "labels")
    names = [str(n) for n in load_npz_key(path, "segment_names")]
    out = {}
    for subject, actions in labels.items():
        for action, entry in expect_dict(actions, path, key_path("labels", subject)).items():
            where = key_path("labels", subject, action)
            entry = expect_dict(entry, path, where)
            out[(subject, action)] = {key: expect_array(entry.get(key), path, f"{where}[{key!r}]", (None,))
                                      for key in ("speed", "segment")}
    return out, names


def load_synthetic(data_dir: Path | None = None, *, seed: int = 0, minutes: float = 2.0, source: str = "cpn",
                   **options: Any) -> PoseData:
    """Generate (if missing) and read synthetic H36M data; ``options`` go to :func:`load_h36m`."""
    folder = write_synthetic(Path(data_dir) if data_dir is not None else cache_dir(seed, minutes),
                             seed=seed, minutes=minutes)
    data = load_h36m(folder, source=source, **options)
    labels, names = read_labels(folder / FILE_LABELS)
    data.name = "synthetic"
    data.extras.update(labels=labels, segment_names=names, seed=seed, minutes=minutes)
    return data
