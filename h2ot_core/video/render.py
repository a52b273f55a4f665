"""Render lifted poses: the frame with its 2D skeleton beside one 3D panel per model (and the ground truth).

One matplotlib figure (Agg) is built once and its artists are updated per frame, so a frame costs one
canvas draw. The 3D axes are fixed for the whole video and shared by all panels (a cube around the
root-relative poses), seen from the camera's side: camera x to the right, depth into the screen, up = -y.
Each panel's title carries the model's name, GFLOPs (papers' convention, per clip) and lifting time, and,
with a ground truth, its MPJPE on the frame shown.

Output: MP4 (H.264 through PyAV, ``yuv420p``) or GIF (Pillow), at the input's frame rate.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np

from h2ot_core.data.skeleton import JOINTS_LEFT_17, JOINTS_RIGHT_17, PARENTS_17

#: formats :func:`write_video` writes, by file suffix
VIDEO_FORMATS = ("mp4", "gif")
_LEFT, _RIGHT, _CENTRE = "#1f77b4", "#d62728", "#333333"
_DPI = 80


def _bone_colour(child: int) -> str:
    return _LEFT if child in JOINTS_LEFT_17 else _RIGHT if child in JOINTS_RIGHT_17 else _CENTRE


_BONES = [(PARENTS_17[j], j) for j in range(1, len(PARENTS_17))]


@dataclass
class Panel:
    """One 3D panel: ``title`` (first line, e.g. the trial's name), ``subtitle`` (GFLOPs, time) and
    ``poses [T, 17, 3]`` in metres (camera axes, root-relative); ``errors_mm [T]`` per-frame MPJPE or None."""

    title: str
    subtitle: str
    poses: np.ndarray
    errors_mm: np.ndarray | None = None


def _radius(panels: Sequence[Panel]) -> float:
    """Half the side of the fixed cube: the largest joint distance from the root, rounded up to 10 cm."""
    extent = max(float(np.abs(p.poses - p.poses[:, :1]).max()) for p in panels)
    return max(0.8, np.ceil(extent * 10) / 10)


class SkeletonFigure:
    """The figure of one video; :meth:`draw` returns frame ``t`` as RGB ``uint8 [H, W, 3]``."""

    def __init__(self, panels: Sequence[Panel], pixels: np.ndarray, image_size: tuple[int, int], *,
                 panel_inches: float = 4.0):
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.panels, self.pixels = list(panels), pixels
        w, h = image_size
        n = 1 + len(self.panels)
        width_in = panel_inches * n
        # even pixel sizes: H.264 in yuv420p needs them
        self.fig = Figure(figsize=(round(width_in * _DPI / 2) * 2 / _DPI, round(panel_inches * 1.15 * _DPI / 2) * 2 / _DPI),
                          dpi=_DPI)
        self.canvas = FigureCanvasAgg(self.fig)
        self.fig.subplots_adjust(left=0.01, right=0.99, bottom=0.02, top=0.86, wspace=0.05)
        ax2d = self.fig.add_subplot(1, n, 1)
        ax2d.set_xlim(0, w)
        ax2d.set_ylim(h, 0)
        ax2d.set_aspect("equal")
        ax2d.axis("off")
        self.image = ax2d.imshow(np.full((2, 2, 3), 235, np.uint8), extent=(0, w, h, 0), interpolation="bilinear")
        self.lines2d = [ax2d.plot([], [], color=_bone_colour(c), lw=2)[0] for _, c in _BONES]
        ax2d.set_title("input + 2D", fontsize=10)
        self.ax2d = ax2d
        r = _radius(self.panels)
        self.lines3d, self.titles = [], []
        for i, panel in enumerate(self.panels):
            ax = self.fig.add_subplot(1, n, i + 2, projection="3d")
            ax.set_xlim(-r, r)
            ax.set_ylim(-r, r)
            ax.set_zlim(-r, r)
            ax.set_box_aspect((1, 1, 1))
            ax.view_init(elev=12, azim=-75)
            ax.set_xticklabels([])
            ax.set_yticklabels([])
            ax.set_zticklabels([])
            self.lines3d.append([ax.plot([], [], [], color=_bone_colour(c), lw=2)[0] for _, c in _BONES])
            self.titles.append(ax.set_title(panel.title, fontsize=10))

    def _title(self, panel: Panel, t: int) -> str:
        extra = f" · MPJPE {panel.errors_mm[t]:.1f} mm" if panel.errors_mm is not None else ""
        return f"{panel.title}\n{panel.subtitle}{extra}"

    def draw(self, t: int, frame: np.ndarray | None = None) -> np.ndarray:
        if frame is not None:
            self.image.set_data(frame)
        px = self.pixels[t]
        for line, (p, c) in zip(self.lines2d, _BONES, strict=True):
            line.set_data([px[p, 0], px[c, 0]], [px[p, 1], px[c, 1]])
        for panel, lines, title in zip(self.panels, self.lines3d, self.titles, strict=True):
            pose = panel.poses[t] - panel.poses[t, :1]
            # camera axes -> plot axes: x stays, depth z goes into the screen (plot y), up is -y (plot z)
            xs, ys, zs = pose[:, 0], pose[:, 2], -pose[:, 1]
            for line, (p, c) in zip(lines, _BONES, strict=True):
                line.set_data_3d([xs[p], xs[c]], [ys[p], ys[c]], [zs[p], zs[c]])
            title.set_text(self._title(panel, t))
        self.canvas.draw()
        return np.asarray(self.canvas.buffer_rgba())[..., :3].copy()

    def close(self) -> None:
        self.fig.clear()


def write_video(path: Path, frames: Iterable[np.ndarray], fps: float) -> int:
    """Write RGB frames to ``path`` (``.mp4``: H.264; ``.gif``: Pillow); returns the number written."""
    path = Path(path)
    kind = path.suffix.lower().lstrip(".")
    if kind == "gif":
        from PIL import Image

        images = [Image.fromarray(f) for f in frames]
        images[0].save(path, save_all=True, append_images=images[1:], duration=max(20, round(1000 / fps)), loop=0)
        return len(images)
    import av

    count = 0
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "23", "preset": "veryfast"}
        for rgb in frames:
            if count == 0:
                stream.width, stream.height = rgb.shape[1], rgb.shape[0]
            for packet in stream.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                container.mux(packet)
            count += 1
        for packet in stream.encode():
            container.mux(packet)
    return count
