"""From a video, a folder of frames, a keypoints file or a dataset clip to 3D poses, rendered, with a timing
line per stage (decode, 2D, lifting per model, render) in ms per frame and FPS.

The stages are separate functions so that ``h2ot video`` and ``h2ot report`` compose them: a :class:`Track`
(one person's H36M-17 2D track with its image size and frame rate), :class:`Lifter` s (prepared models),
:func:`lift_all` and :func:`render`, and :func:`write_outputs` for the files a user reads.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from h2ot_core.data.cameras import normalize_screen_coordinates
from h2ot_core.data.skeleton import JOINT_NAMES_17
from h2ot_core.errors import ShapeError
from h2ot_core.hourglass import HourglassModel
from h2ot_core.lifting import Lifted, lift_sequence
from h2ot_core.video.keypoints import FillReport, fill_missing, to_h36m

#: a joint-frame below this score is interpolated from its neighbours in time
KEYPOINT_THRESHOLD = 0.3
#: height of the input frame in the rendered video (frames are shrunk to it, never enlarged)
DISPLAY_HEIGHT = 360


@dataclass(frozen=True)
class StageTime:
    """``seconds`` spent in ``stage`` over ``frames`` frames; ``detail`` says how (device, batch ...)."""

    stage: str
    seconds: float
    frames: int
    detail: str = ""

    @property
    def ms_per_frame(self) -> float:
        return 1e3 * self.seconds / max(self.frames, 1)

    def line(self) -> str:
        fps = self.frames / self.seconds if self.seconds > 0 else float("inf")
        return f"{self.stage:<28} {self.ms_per_frame:9.2f} ms/frame {fps:9.1f} FPS  {self.detail}".rstrip()


@dataclass
class Track:
    """One person's 2D track: ``pixels [T, 17, 2]`` (H36M-17) and ``scores [T, 17]``, in an image of
    ``image_size`` (w, h) at ``fps``; ``display`` frames for the rendered video (or None: a blank canvas)
    at ``display_scale`` of the image's pixels; what filling did; the time the stages took."""

    pixels: np.ndarray
    scores: np.ndarray
    image_size: tuple[int, int]
    fps: float
    fill: FillReport | None = None
    display: list[np.ndarray] | None = None
    display_scale: float = 1.0
    times: list[StageTime] = field(default_factory=list)

    @property
    def frames(self) -> int:
        return int(self.pixels.shape[0])

    def normalized(self) -> np.ndarray:
        """``[T, 17, 3]``: x, y normalised as in training (:func:`normalize_screen_coordinates`), score."""
        w, h = self.image_size
        xy = normalize_screen_coordinates(self.pixels.astype(np.float32), w, h)
        return np.concatenate([xy, self.scores[..., None].astype(np.float32)], axis=-1)


def _filled(pixels: np.ndarray, scores: np.ndarray, source: str) -> tuple[np.ndarray, np.ndarray, FillReport]:
    return fill_missing(pixels, scores, threshold=KEYPOINT_THRESHOLD, source=source)


def _display(frame: np.ndarray, scale: float) -> np.ndarray:
    if scale >= 1.0:
        return frame
    from PIL import Image

    size = (max(2, round(frame.shape[1] * scale)), max(2, round(frame.shape[0] * scale)))
    return np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BILINEAR))


def track_video(path: Path, detector, *, max_frames: int | None = None, detail: str = "") -> Track:
    """Decode ``path`` (video file or folder of frames) and run the 2D ``detector`` (a
    :class:`~h2ot_core.video.detector.PoseDetector`) on every frame, timing both stages."""
    from h2ot_core.video.decode import read_frames, video_info
    from h2ot_core.video.keypoints import LAYOUTS

    info = video_info(path)
    scale = min(1.0, DISPLAY_HEIGHT / info.height)
    pixels, scores, display = [], [], []
    decode_s = detect_s = 0.0
    frames = read_frames(path, max_frames)
    while True:
        t0 = time.perf_counter()
        frame = next(frames, None)
        decode_s += time.perf_counter() - t0
        if frame is None:
            break
        t0 = time.perf_counter()
        pose = detector(frame)
        detect_s += time.perf_counter() - t0
        display.append(_display(frame, scale))
        pixels.append(pose.keypoints if pose is not None else np.full((17, 2), np.nan))
        scores.append(pose.scores if pose is not None else np.zeros(17))
    if not pixels:
        from h2ot_core.errors import DataError

        raise DataError(f"{path}: no frames to read")
    h36m, conf = to_h36m(np.asarray(pixels), np.asarray(scores), LAYOUTS["coco"])
    filled, conf, report = _filled(h36m, conf, str(path))
    n = len(pixels)
    times = [StageTime("decode", decode_s, n, f"{info.width}x{info.height} at {info.fps:g} fps"),
             StageTime("2D", detect_s, n, f"{detail}person detector on {detector.detections}/{n} frames".strip())]
    return Track(filled, conf, (info.width, info.height), info.fps, report, display, scale, times)


def track_keypoints(path: Path, *, layout: str | None, image_size: tuple[int, int] | None, fps: float | None
                    ) -> Track:
    """A keypoints file (:mod:`h2ot_core.video.keypoint_files`) as a filled H36M-17 track."""
    from h2ot_core.video.decode import DEFAULT_FPS
    from h2ot_core.video.keypoint_files import read_keypoints

    t0 = time.perf_counter()
    kp = read_keypoints(path, layout)
    size = image_size or kp.image_size
    if size is None:
        raise ShapeError(f"{path}: a keypoints file does not state the frame size the 2D is normalised by; "
                         f"pass --image-size WIDTHxHEIGHT")
    h36m, conf = to_h36m(kp.pixels, kp.scores, kp.layout)
    filled, conf, report = _filled(h36m, conf, str(path))
    seconds = time.perf_counter() - t0
    frames = filled.shape[0]
    return Track(filled, conf, size, fps or kp.fps or DEFAULT_FPS, report,
                 times=[StageTime("2D (read keypoints)", seconds, frames, f"{kp.layout.name} → h36m")])


def track_from_normalized(pose2d: np.ndarray, image_size: tuple[int, int], fps: float) -> Track:
    """A dataset clip's screen-normalised 2D ``[T, 17, 2 or 3]`` as a track (pixels undo the normalisation)."""
    w, h = image_size
    pixels = (pose2d[..., :2].astype(np.float64) + np.array([1.0, h / w])) * w / 2
    scores = pose2d[..., 2] if pose2d.shape[-1] == 3 else np.ones(pose2d.shape[:2])
    return Track(pixels, scores, image_size, fps)


# --- lifting ------------------------------------------------------------------------------------------------


@dataclass
class Lifter:
    """A model ready to lift: ``name`` (trial key or file), ``gflops`` per clip (papers' convention)."""

    name: str
    model: HourglassModel
    gflops: float
    source: str


def prepare_lifter(model: HourglassModel, name: str, *, device, precision: str, source: str) -> Lifter:
    """Check ``model`` lifts H36M-17 keypoints, count its GFLOPs (CPU, one clip) and put it on ``device`` in
    ``precision`` (:func:`h2ot_core.device.inference_model`)."""
    from h2ot_core.cost import count_flops, example_input
    from h2ot_core.device import inference_model

    joints = model.backbone.num_joints
    if joints != len(JOINT_NAMES_17):
        raise ShapeError(f"{source}: the checkpoint lifts {joints} joints; video and keypoint input is mapped to "
                         f"the {len(JOINT_NAMES_17)} Human3.6M joints")
    model = model.cpu().eval()
    gflops, _ = count_flops(model, example_input(model))
    return Lifter(name, inference_model(model.to(device), precision), gflops, source)


@dataclass
class Result:
    """One model's output on a track: the lifted poses, per-frame MPJPE against a ground truth (mm) or None."""

    lifter: Lifter
    lifted: Lifted
    errors_mm: np.ndarray | None = None

    @property
    def time(self) -> StageTime:
        s = self.lifted.stats
        return StageTime(f"lifting {self.lifter.name}"[:28], s.model_seconds, s.frames,
                         f"{s.device} {s.precision}, batch {s.batch_size}, {s.windows} windows"
                         f"{', flip' if s.flip else ''}, {self.lifter.gflops:.3g} GFLOPs/clip")


def lift_all(lifters: Sequence[Lifter], track: Track, *, gt: np.ndarray | None = None, overlap: int | None = None,
             flip: bool = False, batch_size: int = 16, precision: str = "fp32") -> list[Result]:
    """Lift ``track`` with every model; with ``gt [T, 17, 3]`` (metres, root-relative) the per-frame MPJPE."""
    x = track.normalized()
    results = []
    for lifter in lifters:
        lifted = lift_sequence(lifter.model, x, overlap=overlap, flip=flip, batch_size=batch_size,
                               precision=precision, source=lifter.source)
        errors = None
        if gt is not None:
            pred = lifted.poses - lifted.poses[:, :1]
            errors = np.linalg.norm(pred - (gt - gt[:, :1]), axis=-1).mean(-1) * 1000.0
        results.append(Result(lifter, lifted, errors))
    return results


# --- output -------------------------------------------------------------------------------------------------


def render(path: Path, track: Track, results: Sequence[Result], *, gt: np.ndarray | None = None,
           still: Path | None = None) -> StageTime:
    """Render the video (frame + 2D beside one 3D panel per model, and the ground truth) to ``path``;
    ``still`` also saves the middle frame as a PNG."""
    from h2ot_core.video.render import Panel, SkeletonFigure, write_video

    t0 = time.perf_counter()
    panels = []
    for r in results:
        lift_ms = r.lifted.stats.ms_per_frame
        panels.append(Panel(r.lifter.name, f"{r.lifter.gflops:.3g} GFLOPs · lift {lift_ms:.2g} ms/frame", r.lifted.poses,
                            r.errors_mm))
    if gt is not None:
        panels.append(Panel("ground truth", "", gt))
    size = (round(track.image_size[0] * track.display_scale), round(track.image_size[1] * track.display_scale))
    figure = SkeletonFigure(panels, track.pixels * track.display_scale, size)
    middle = track.frames // 2

    def frames():
        for t in range(track.frames):
            image = figure.draw(t, track.display[t] if track.display else None)
            if still is not None and t == middle:
                from PIL import Image

                Image.fromarray(image).save(still)
            yield image

    written = write_video(path, frames(), track.fps)
    figure.close()
    return StageTime("render", time.perf_counter() - t0, written, f"{path.suffix.lstrip('.')} {len(panels)} 3D panels")


def write_outputs(folder: Path, track: Track, results: Sequence[Result], times: Sequence[StageTime],
                  source: str) -> None:
    """``poses3d.npy`` ``[models, T, 17, 3]`` (metres), ``keypoints2d.npy`` ``[T, 17, 3]`` (pixels + score)
    and ``poses3d.json``: what they hold, their units, per-model cost and MPJPE, the filling and the timings."""
    poses = np.stack([r.lifted.poses for r in results]).astype(np.float32)
    np.save(folder / "poses3d.npy", poses)
    np.save(folder / "keypoints2d.npy", np.concatenate([track.pixels, track.scores[..., None]], -1).astype(np.float32))
    doc = {
        "input": source,
        "frames": track.frames, "fps": track.fps, "image_size": list(track.image_size),
        "joints": list(JOINT_NAMES_17),
        "poses3d.npy": "float32 [models, frames, 17, 3]: metres, camera axes (x right, y down, z forward), "
                       "root-relative (joint 0, the pelvis, at 0)",
        "keypoints2d.npy": "float32 [frames, 17, 3]: Human3.6M-17 pixels (x, y) and detector score, after filling",
        "filled": track.fill.text() if track.fill else "nothing (dataset clip)",
        "models": [{"name": r.lifter.name, "checkpoint": r.lifter.source, "gflops_per_clip": r.lifter.gflops,
                    "frames_per_clip": r.lifter.model.num_frames, "pipeline": r.lifter.model.pipeline,
                    "lift_ms_per_frame": r.lifted.stats.ms_per_frame,
                    "mpjpe_mm": None if r.errors_mm is None else float(r.errors_mm.mean())} for r in results],
        "timing": [{"stage": t.stage, "ms_per_frame": t.ms_per_frame, "frames": t.frames, "detail": t.detail}
                   for t in times],
        "poses3d_mm": {r.lifter.name: np.round(r.lifted.poses * 1000.0, 1).tolist() for r in results},
    }
    (folder / "poses3d.json").write_text(json.dumps(doc, indent=1), encoding="utf-8")
