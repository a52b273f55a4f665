"""Read a video file (PyAV, whose wheels carry FFmpeg) or a folder of frames into RGB frames, keeping the rate.

Frames are yielded one at a time at full size (for the 2D detector); :class:`VideoInfo` says the size, the
frame rate (``average_rate`` of the stream, else its guessed rate) and the frame count where the container
states it. Decoding problems are one :class:`~h2ot_core.errors.DataError` naming the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from h2ot_core.errors import DataError

#: file suffixes read as a folder's frames, in file-name order
FRAME_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
#: frame rate assumed for a folder of frames or a keypoints file that does not state one (Human3.6M's)
DEFAULT_FPS = 50.0


@dataclass(frozen=True)
class VideoInfo:
    """``width``×``height`` pixels at ``fps`` frames/s; ``frames`` as the container states it (0: unknown)."""

    width: int
    height: int
    fps: float
    frames: int


def _open(path: Path):  # -> av.container.InputContainer
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable video ({type(exc).__name__}: {exc})") from None
    if not container.streams.video:
        container.close()
        raise DataError(f"{path}: holds no video stream")
    return container


def video_info(path: Path) -> VideoInfo:
    """Size, rate and stated frame count of a video file, or of a folder of frames (at :data:`DEFAULT_FPS`)."""
    path = Path(path)
    if path.is_dir():
        files = frame_files(path)
        with _image(files[0]) as first:
            return VideoInfo(first.width, first.height, DEFAULT_FPS, len(files))
    container = _open(path)
    with container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or DEFAULT_FPS
        return VideoInfo(stream.codec_context.width, stream.codec_context.height, float(rate), int(stream.frames or 0))


def frame_files(folder: Path) -> list[Path]:
    files = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
    if not files:
        raise DataError(f"{folder}: no frames ({', '.join(FRAME_SUFFIXES)} files) in this folder")
    return files


def _image(path: Path):  # -> PIL.Image.Image
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(path)
    except (OSError, UnidentifiedImageError) as exc:
        raise DataError(f"{path}: not a readable image ({exc})") from None


def read_frames(path: Path, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """RGB ``uint8 [H, W, 3]`` frames of a video file or a folder of frames, in order."""
    path = Path(path)
    if path.is_dir():
        size = None
        for i, file in enumerate(frame_files(path)[:max_frames]):
            with _image(file) as img:
                frame = np.asarray(img.convert("RGB"))
            if size is not None and frame.shape != size:
                raise DataError(f"{file}: frame {i} is {frame.shape[1]}x{frame.shape[0]}, the first frame "
                                f"{size[1]}x{size[0]}; a folder's frames must share one size")
            size = frame.shape
            yield frame
        return
    import av

    container = _open(path)
    count = 0
    with container:
        try:
            for frame in container.decode(video=0):
                yield frame.to_ndarray(format="rgb24")
                count += 1
                if max_frames is not None and count >= max_frames:
                    return
        except av.error.FFmpegError as exc:
            raise DataError(f"{path}: decoding failed after {count} frames ({type(exc).__name__}: {exc})") from None
    if count == 0:
        raise DataError(f"{path}: the video stream holds no decodable frame")
