"""Weights of the built-in 2D detector: pinned by SHA-256, found offline or downloaded once with progress.

Each model is an ``end2end.onnx`` inside an OpenMMLab ``onnx_sdk`` zip; it is kept as ``<zip name>.onnx``
(rtmlib's cache name, so rtmlib's cache folder works as a weights folder too). The SHA-256 values pin the
``.onnx`` files themselves (they agree in two independent projects that pin these files; we could not
download them from here to check). Order of search:

1. ``--detector-weights PATH`` / ``$H2OT_DETECTOR_WEIGHTS``: a folder holding the ``.onnx`` files (for offline
   clusters: copy them there). Nothing is downloaded then.
2. the cache ``$H2OT_CACHE/detector`` (default ``~/.cache/h2ot/detector``), then rtmlib's
   ``~/.cache/rtmlib/hub/checkpoints``;
3. a download of the zip (progress reported through ``progress``), checked before it is kept.

A file whose checksum differs is refused with a line naming it and both checksums.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from h2ot_core.environment import CACHE, DETECTOR_WEIGHTS, XDG_CACHE_HOME
from h2ot_core.errors import ConfigError, DataError
from h2ot_core.registry import unknown_message

#: a folder holding the detector's .onnx files (same as --detector-weights)
DETECTOR_WEIGHTS_ENV = DETECTOR_WEIGHTS.name
_OPENMMLAB = "https://download.openmmlab.com/mmpose/v1/projects/rtmposev1/onnx_sdk/"
#: bytes per read while downloading
_CHUNK = 1 << 16

#: progress callback: (bytes so far, total bytes or None, what)
Progress = Callable[[int, int | None, str], None]


@dataclass(frozen=True)
class OnnxWeights:
    """One ONNX model: its file name, the zip it comes in, the file's SHA-256 and approximate size."""

    file: str
    url: str
    sha256: str
    megabytes: int


YOLOX_TINY = OnnxWeights("yolox_tiny_8xb8-300e_humanart-6f3252f9.onnx",
                         _OPENMMLAB + "yolox_tiny_8xb8-300e_humanart-6f3252f9.zip",
                         "ceb11c07298f95c50d7c5abeb906d03340c85f23aa79e3e66966e7fb6c307250", 20)
RTMPOSE_S = OnnxWeights("rtmpose-s_simcc-body7_pt-body7_420e-256x192-acd4a1ef_20230504.onnx",
                        _OPENMMLAB + "rtmpose-s_simcc-body7_pt-body7_420e-256x192-acd4a1ef_20230504.zip",
                        "9aeb635b83f86aea45cf45d85798f7eba1a162de8e0d721c44e54fe5eebaf47d", 21)
RTMPOSE_M = OnnxWeights("rtmpose-m_simcc-body7_pt-body7_420e-256x192-e48f03d0_20230504.onnx",
                        _OPENMMLAB + "rtmpose-m_simcc-body7_pt-body7_420e-256x192-e48f03d0_20230504.zip",
                        "5c0a4bf67953e6d2ac43ce15e77dc9d5d354ae18430a47d2c5963a7bc5683e3c", 52)

#: built-in detectors: name -> (person detector, pose model). MMPose's model zoo gives COCO val AP 71.6
#: (RTMPose-s) and 74.6 (RTMPose-m) at 256×192 for COCO-only training; these body7 weights saw more data.
DETECTORS: dict[str, tuple[OnnxWeights, OnnxWeights]] = {
    "rtmpose-s": (YOLOX_TINY, RTMPOSE_S),
    "rtmpose-m": (YOLOX_TINY, RTMPOSE_M),
}


def detector_cache() -> Path:
    return Path(str(CACHE.value())) / "detector"


def rtmlib_cache() -> Path:
    return Path(str(XDG_CACHE_HOME.value())) / "rtmlib" / "hub" / "checkpoints"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checked(path: Path, weights: OnnxWeights) -> Path:
    """``path`` if its SHA-256 is the pinned one; else a DataError naming the file and both checksums."""
    got = sha256_of(path)
    if got != weights.sha256:
        raise DataError(f"{path}: SHA-256 {got} is not the pinned {weights.sha256} of {weights.file}; "
                        f"delete it, or download it again from {weights.url}")
    return path


def download(weights: OnnxWeights, folder: Path, *, progress: Progress | None = None, url: str | None = None) -> Path:
    """Fetch ``weights``' zip (or ``url``), extract its ``.onnx``, check it and keep it as ``folder/<file>``.

    The zip goes to a temporary file; only a checked ``.onnx`` is renamed into place, so an interrupted or
    corrupt download never leaves a file that looks complete.
    """
    source = url or weights.url
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".download-") as tmp:
        archive = Path(tmp) / "weights.zip"
        try:
            with urllib.request.urlopen(source, timeout=60) as response, open(archive, "wb") as fh:
                total = int(response.headers.get("Content-Length") or 0) or None
                done = 0
                while block := response.read(_CHUNK):
                    fh.write(block)
                    done += len(block)
                    if progress is not None:
                        progress(done, total, weights.file)
        except OSError as exc:
            raise DataError(f"{source}: download failed ({exc}); on a machine without internet access, copy "
                            f"{weights.file} into a folder and pass it as --detector-weights") from None
        try:
            with zipfile.ZipFile(archive) as zf:
                members = [m for m in zf.namelist() if m.endswith(".onnx")]
                if not members:
                    raise DataError(f"{source}: the archive holds no .onnx file")
                extracted = Path(tmp) / weights.file
                with zf.open(members[0]) as src, open(extracted, "wb") as dst:
                    shutil.copyfileobj(src, dst)
        except zipfile.BadZipFile:
            raise DataError(f"{source}: the download is not a zip archive") from None
        checked(extracted, weights)
        target = folder / weights.file
        os.replace(extracted, target)
    return target


def locate(weights: OnnxWeights, folder: Path | None, *, progress: Progress | None = None,
           allow_download: bool = True) -> Path:
    """The checked ``.onnx`` of ``weights`` (module docstring's order of search)."""
    if folder is not None:
        path = Path(folder) / weights.file
        if not path.is_file():
            raise DataError(f"{folder}: no {weights.file} in this folder (--detector-weights); get it from "
                            f"{weights.url} (unzip; rename end2end.onnx to {weights.file})")
        return checked(path, weights)
    for cache in (detector_cache(), rtmlib_cache()):
        if (cache / weights.file).is_file():
            return checked(cache / weights.file, weights)
    if not allow_download:
        raise DataError(f"{weights.file} is not in {detector_cache()}; pass --detector-weights FOLDER")
    return download(weights, detector_cache(), progress=progress)


def detector_files(name: str, folder: Path | None = None, *, progress: Progress | None = None,
                   allow_download: bool = True) -> tuple[Path, Path]:
    """``(person detector, pose model)`` ONNX files of built-in detector ``name``, checked."""
    if name not in DETECTORS:
        raise ConfigError(f"--detector: {unknown_message('detector', name, list(DETECTORS))}")
    det, pose = DETECTORS[name]
    return (locate(det, folder, progress=progress, allow_download=allow_download),
            locate(pose, folder, progress=progress, allow_download=allow_download))
