"""Reading VideoPose3D / P-STMO ``.npz`` files without trusting their pickles.

Those formats store pickled Python dicts inside ``np.savez`` (``np.load(..., allow_pickle=True)``).
A plain unpickler can run arbitrary code from a crafted file, so object arrays are read here with an
unpickler that only rebuilds numpy arrays, dtypes and scalars (dicts, lists, strings and numbers
need no import at all); anything else is refused with a :class:`DataError`.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from h2ot_core.errors import DataError

# (module, name) pairs a numpy array pickle may import; both numpy 1.x and 2.x spellings.
_ALLOWED_GLOBALS = frozenset(
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
) | {("numpy", "ndarray"), ("numpy", "dtype")}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to import {module}.{name}")
        return super().find_class(module, name)


def _read_member(fp: Any) -> Any:
    version = np.lib.format.read_magic(fp)
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    if version not in readers:
        raise ValueError(f"unsupported .npy format version {version}")
    shape, _fortran, dtype = readers[version](fp)
    if not dtype.hasobject:
        fp.seek(0)
        return np.lib.format.read_array(fp, allow_pickle=False)
    # latin1 lets Python-2-era files (VideoPose3D's originals) decode their numpy byte buffers.
    array = _ArrayOnlyUnpickler(fp, encoding="latin1").load()
    if not isinstance(array, np.ndarray) or array.shape != shape:
        raise ValueError("object member is not the array its header describes")
    return array


def load_npz_key(path: Path, key: str) -> Any:
    """The value stored under ``key`` in ``path``; a 0-d object array is unwrapped to its object.

    Raises:
        DataError: the file is missing or unreadable, lacks ``key``, or holds a disallowed pickle.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with zipfile.ZipFile(path) as zf:
            members = {name.removesuffix(".npy"): name for name in zf.namelist()}
            if key not in members:
                raise DataError(f"{path}: missing key {key!r}; the file holds "
                                f"{', '.join(sorted(members)) or 'nothing'}")
            with zf.open(members[key]) as fp:
                value = _read_member(fp)
    except DataError:
        raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, pickle.UnpicklingError,
            AttributeError, TypeError, IndexError) as exc:
        raise DataError(f"{path}: cannot read key {key!r} ({type(exc).__name__}: {exc}); "
                        f"the file is truncated, corrupt or not a numpy .npz") from None
    if value.dtype.hasobject and value.shape == ():
        return value.item()
    return value
