"""Where a campaign's trials find their data, and the check that it is there before anything starts.

A trial reads dataset ``NAME`` from ``$H2OT_DATA_DIR/NAME`` (the settings table: ``h2ot config``); the
self-contained datasets (``synthetic``, ``mocap_clips``) need no folder. ``campaign validate`` and
``campaign run --dry-run`` check those folders where the driver runs, so a grid whose data is missing is
refused in one line saying how to point at it, instead of every trial failing on its worker.
"""

from __future__ import annotations

import inspect
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from h2ot_core.environment import DATA_DIR
from h2ot_core.errors import DataError
from h2ot_core.names import DATASETS

if TYPE_CHECKING:
    from orchestrator.grid import GridSpec


def data_dir(dataset: str) -> Path | None:
    """``$H2OT_DATA_DIR/<dataset>`` when that folder exists, else ``None``.

    ``None`` lets generated datasets (``synthetic``) use their per-seed cache, and makes a real dataset
    without files fail in its loader with a message naming the dataset.
    """
    root = DATA_DIR.raw()
    folder = Path(root) / dataset if root else None
    return folder if folder is not None and folder.is_dir() else None


def missing_data(dataset: str, default_options: bool = True) -> str | None:
    """Why trials of ``dataset`` would find no data here; ``None``: they would.

    With the reader's default options every file of :attr:`DatasetInfo.files` is checked; with other
    options (``source: gt`` reads another 2D file) the first one, which every option reads (the 3D poses).
    """
    info = DATASETS.info(dataset)
    if info.self_contained:
        return None
    root = DATA_DIR.raw()
    files = ", ".join(info.files)
    if not root:
        return (f"{DATA_DIR.name} is not set; set it to the folder holding {dataset}/ ({files}), e.g. "
                f"export {DATA_DIR.name}=/data (then /data/{dataset}/{info.files[0]})")
    folder = Path(root) / dataset
    if not folder.is_dir():
        return f"{DATA_DIR.name}={root} has no {dataset}/ folder; it must hold {dataset}/ with {files}"
    wanted = info.files if default_options else info.files[:1]
    absent = [f for f in wanted if not any(folder.glob(f))]
    if absent:
        return (f"{folder} lacks {', '.join(absent)}; `h2ot data check {folder}` says what it holds "
                f"({DATA_DIR.name} is the folder holding {dataset}/)")
    return None


def reads_default_files(dataset: str, options: Mapping[str, Any]) -> bool:
    """Whether reader ``options`` are its defaults (``source: cpn`` for h36m), so it reads the files of
    :attr:`DatasetInfo.files`."""
    if DATASETS.info(dataset).self_contained:  # no files to check: its loader is not even imported
        return True
    params = inspect.signature(DATASETS.get(dataset)).parameters
    return all(k in params and params[k].default == v for k, v in options.items())


def check_data(grid: GridSpec, source: str) -> None:
    """Raise :class:`DataError` naming the first dataset of ``grid`` whose data this machine lacks (a
    search: the datasets its space may propose)."""
    if grid.search is None:
        counts = Counter((s.dataset, reads_default_files(s.dataset, s.data)) for s in grid.expand())
    else:
        options = grid.fixed.get("data") or {}
        counts = Counter({(d, reads_default_files(d, options)): grid.search.trials
                          for d in grid.axes.get("dataset", [])})
    for (dataset, default_options), n in counts.items():
        why = missing_data(dataset, default_options)
        if why is not None:
            raise DataError(f"{source}: dataset {dataset!r} ({n} trial(s)): no data: {why}")
