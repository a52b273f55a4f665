"""``h2ot video``: a person's video (or frames, or any detector's keypoints, or a dataset clip) to 3D, rendered,
for one model or several side by side; and the qualitative figure ``h2ot report`` adds to a campaign's page.

Models are native checkpoints (paths), storage URIs (``s3://``, ``gs://``) or leaderboard trial keys (their
``checkpoint_uri``). Everything is written into a temporary folder beside ``--out`` and renamed into place at
the end, so a failed run leaves no half-written output.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from h2ot_core.contracts import TrialStatus
from h2ot_core.errors import ConfigError, DataError, ShapeError
from h2ot_core.video.weights import DETECTOR_WEIGHTS_ENV
from orchestrator.commands.core import DeviceOpt, PrecisionOpt, device_for
from orchestrator.commands.options import DbUrlOpt
from orchestrator.console import err, out, user_errors

#: datasets whose clips ``--gt`` reads: Human3.6M-layout ones, seen by the H36M cameras
GT_DATASETS = ("h36m", "synthetic", "mocap_clips")
#: frames of a dataset clip in ``h2ot report``'s figure (1 s at 50 Hz)
REPORT_FRAMES = 50


@dataclass
class ModelRef:
    """A model to load: ``name`` shown in the video, ``uri`` of its native checkpoint."""

    name: str
    uri: str


def _is_file_ref(text: str) -> bool:
    from orchestrator.storage import scheme

    return bool(scheme(text)) or Path(text).exists() or text.endswith((".pt", ".pth"))


def _trial_name(row: dict[str, Any]) -> str:
    schedule = f" {row['schedule']}" if row.get("schedule") else ""
    pruner = "unpruned" if row["pruner"] == "none" else f"{row['pruner']}+{row['recoverer']}{schedule}"
    return f"{row['trial_key'][:10]} {row['backbone']}-{row['frames']} {pruner}"


def _from_rows(rows: list[dict[str, Any]]) -> list[ModelRef]:
    refs = []
    for row in rows:
        if not row.get("checkpoint_uri"):
            raise DataError(f"trial {row['trial_key']} ({row['status']}) has no checkpoint in the leaderboard")
        refs.append(ModelRef(_trial_name(row), row["checkpoint_uri"]))
    return refs


def resolve_models(models: list[str], campaign: str | None, top: int, db_url: str | None) -> list[ModelRef]:
    """``--model`` values (files, URIs, trial keys) or the campaign's ``top`` complete trials by MPJPE."""
    if bool(models) == bool(campaign):
        raise ConfigError("give the models to run: --model (repeatable) or --campaign NAME [--top K], not both")
    keys = [m for m in models if not _is_file_ref(m)]
    rows: dict[str, dict[str, Any]] = {}
    if keys or campaign:
        from results.db import make_engine

        engine = make_engine(db_url)
        if campaign:
            from results.queries import leaderboard

            found = leaderboard(engine, campaign=campaign, status=[TrialStatus.COMPLETE], sort="mpjpe", top=top)
            if not found:
                raise DataError(f"campaign {campaign!r} has no complete trial to show")
            return _from_rows(found)
        from results.lookup import trials_by_key

        rows = dict(zip(keys, trials_by_key(engine, keys), strict=True))
    refs = []
    for m in models:
        refs += _from_rows([rows[m]]) if m in rows else [ModelRef(Path(m).stem if not m.startswith(("s3:", "gs:")) else m, m)]
    return refs


def _size(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ConfigError(f"--image-size {text!r}: expected WIDTHxHEIGHT in pixels, e.g. 1920x1080") from None
    if w < 2 or h < 2:
        raise ConfigError(f"--image-size {text!r}: width and height must be at least 2 pixels")
    return w, h


@dataclass
class GroundTruth:
    """A dataset clip: ``poses3d [T, 17, 3]`` metres (root-relative camera frame), its 2D, image size, fps."""

    label: str
    poses3d: Any
    pose2d: Any
    image_size: tuple[int, int]
    fps: float


def load_gt(spec: str, data_dir: Path | None = None, frames: int | None = None) -> GroundTruth:
    """``DATASET:SUBJECT:ACTION[:CAMERA]`` (camera 0 by default), e.g. ``synthetic:S9:Walking:0``."""
    from h2ot_core.data.loading import load_dataset
    from orchestrator.datasets import data_dir as default_data_dir

    parts = spec.split(":")
    if len(parts) not in (3, 4):
        raise ConfigError(f"--gt {spec!r}: expected DATASET:SUBJECT:ACTION[:CAMERA], e.g. synthetic:S9:Walking:0")
    dataset, subject, action = parts[:3]
    if dataset not in GT_DATASETS:
        raise ConfigError(f"--gt {spec!r}: reads clips of {', '.join(GT_DATASETS)} (Human3.6M cameras), not {dataset!r}")
    try:
        cam = int(parts[3]) if len(parts) == 4 else 0
    except ValueError:
        raise ConfigError(f"--gt {spec!r}: the camera is a number (0-3)") from None
    data = load_dataset(dataset, data_dir or default_data_dir(dataset))
    match = [s for s in (*data.test, *data.train) if (s.subject, s.action, s.camera) == (subject, action, cam)]
    if not match:
        known = sorted({f"{s.subject}:{s.action}" for s in data.test})[:12]
        raise DataError(f"--gt {spec!r}: no clip {subject}/{action}/camera {cam} in {dataset}; test clips include "
                        f"{', '.join(known)}")
    return clip_truth(data, match[0], frames)


def clip_truth(data: Any, clip: Any, frames: int | None = None) -> GroundTruth:
    """A clip of a loaded dataset (its first ``frames`` frames) as a ground truth, with its camera's image size."""
    from h2ot_core.data.cameras import camera

    intr = camera(clip.subject, clip.camera).intrinsics
    n = clip.num_frames if frames is None else min(frames, clip.num_frames)
    return GroundTruth(f"{data.name}:{clip.subject}:{clip.action}:{clip.camera}", clip.pose3d[:n], clip.pose2d[:n],
                       (intr.res_w, intr.res_h), float(data.extras.get("fps", 50)))


@contextlib.contextmanager
def staged_folder(final: Path) -> Iterator[Path]:
    """A temporary folder beside ``final`` that becomes ``final`` (replacing it) only if the block succeeds."""
    final = final.resolve()
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old = final.with_name(f".{final.name}.old")
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)


def _progress() -> Any:
    """A download progress bar on stderr (rich), as the detector weights' callback."""
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    bar = Progress("{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn(), console=err)
    tasks: dict[str, Any] = {}

    def update(done: int, total: int | None, what: str) -> None:
        if what not in tasks:
            bar.start()
            tasks[what] = bar.add_task(f"downloading {what}", total=total)
        bar.update(tasks[what], completed=done)
        if total is not None and done >= total:
            bar.stop()

    return update


def lifters_for(refs: list[ModelRef], device: Any, precision: str) -> list[Any]:
    from h2ot_core.checkpoint import load_native
    from h2ot_core.video.pipeline import prepare_lifter
    from orchestrator.storage import local_copy

    lifters = []
    for ref in refs:
        with local_copy(ref.uri, "checkpoint") as path:
            model, _ = load_native(path)
        lifters.append(prepare_lifter(model, ref.name, device=device, precision=precision, source=ref.uri))
    return lifters


@user_errors
def video(
    input_path: Annotated[Path | None, typer.Argument(
        metavar="INPUT", show_default=False,
        help="a video file, a folder of frames, or a keypoints file (.json COCO results / MMPose / AlphaPose / "
             "YOLO-pose, .npy/.npz arrays); omit it with --gt to lift the clip's own 2D")] = None,
    model: Annotated[list[str] | None, typer.Option(
        "--model", "-m", show_default=False,
        help="native checkpoint, s3:// or gs:// URI, or leaderboard trial key (repeat for side by side)")] = None,
    campaign: Annotated[str | None, typer.Option(help="run the campaign's best complete trials (by MPJPE)",
                                                 show_default=False)] = None,
    top: Annotated[int, typer.Option(min=1, help="with --campaign: how many trials")] = 3,
    out_dir: Annotated[Path | None, typer.Option("--out", help="output folder (default: video_out/<input name>)",
                                                 show_default=False)] = None,
    gt: Annotated[str | None, typer.Option(
        help="ground truth DATASET:SUBJECT:ACTION[:CAMERA] (e.g. synthetic:S9:Walking:0): a panel of it and "
             "each model's MPJPE", show_default=False)] = None,
    layout: Annotated[str | None, typer.Option(help="keypoint layout of a keypoints file: coco, halpe or h36m "
                                                    "(default: by joint count, 17 coco, 26 halpe)",
                                               show_default=False)] = None,
    image_size: Annotated[str | None, typer.Option("--image-size", help="WIDTHxHEIGHT of the frames a keypoints "
                                                                       "file was detected on", show_default=False)] = None,
    fps: Annotated[float | None, typer.Option(help="frame rate of a keypoints file or folder (default 50)",
                                              show_default=False)] = None,
    detector: Annotated[str, typer.Option(help="built-in 2D detector: rtmpose-s (fast) or rtmpose-m")] = "rtmpose-s",
    detector_weights: Annotated[Path | None, typer.Option(
        envvar=DETECTOR_WEIGHTS_ENV, show_default=False,
        help="folder holding the detector's .onnx files (offline use; nothing is downloaded then)")] = None,
    fmt: Annotated[str, typer.Option("--format", help="rendered video: mp4 or gif")] = "mp4",
    overlap: Annotated[int | None, typer.Option(help="frames shared by consecutive seq2seq windows "
                                                     "(default: a quarter of the model's frames)",
                                                show_default=False)] = None,
    flip: Annotated[bool, typer.Option(help="test-time flip augmentation")] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="windows per forward pass")] = 16,
    max_frames: Annotated[int | None, typer.Option(min=1, help="read at most this many frames of a video or --gt clip",
                                                   show_default=False)] = None,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "fp32",
    db_url: DbUrlOpt = None,
) -> None:
    """Lift a person in a video (or keypoints) to 3D with one or more models and render them side by side.

    Writes poses3d.npy, poses3d.json (units, costs, timings), keypoints2d.npy and video.mp4/.gif into --out,
    and prints a timing line per stage (decode, 2D, lifting, render) in ms per frame and FPS.
    """
    from h2ot_core.video.keypoint_files import KEYPOINT_SUFFIXES
    from h2ot_core.video.render import VIDEO_FORMATS

    if fmt not in VIDEO_FORMATS:
        raise ConfigError(f"--format {fmt!r}: expected {' or '.join(VIDEO_FORMATS)}")
    if input_path is None and gt is None:
        raise ConfigError("give an INPUT (video, frames folder or keypoints file), or --gt to lift a dataset clip")
    dev = device_for(device, precision)
    size = _size(image_size)
    refs = resolve_models(list(model or []), campaign, top, db_url)
    if input_path is not None and not input_path.exists():
        raise DataError(f"{input_path}: no such file or folder")
    truth = load_gt(gt, frames=max_frames) if gt else None
    lifters = lifters_for(refs, dev, precision)
    from h2ot_core.video import pipeline

    if input_path is None:
        assert truth is not None
        track = pipeline.track_from_normalized(truth.pose2d, truth.image_size, truth.fps)
        source = truth.label
    elif input_path.is_file() and input_path.suffix.lower() in KEYPOINT_SUFFIXES:
        track = pipeline.track_keypoints(input_path, layout=layout, image_size=size, fps=fps)
        source = str(input_path)
    else:
        track = _track_video(input_path, detector, detector_weights, max_frames)
        if fps is not None:
            track.fps = fps
        source = str(input_path)
    if truth is not None and truth.poses3d.shape[0] != track.frames:
        raise ShapeError(f"--gt {truth.label} has {truth.poses3d.shape[0]} frames, {source} has {track.frames}; "
                         f"the ground truth must be the same clip")
    target = out_dir or Path("video_out") / (input_path.stem if input_path else source.replace(":", "_"))
    results = pipeline.lift_all(lifters, track, gt=None if truth is None else truth.poses3d, overlap=overlap,
                                flip=flip, batch_size=batch_size, precision=precision)
    with staged_folder(target) as folder:
        rendered = pipeline.render(folder / f"video.{fmt}", track, results,
                                   gt=None if truth is None else truth.poses3d, still=folder / "frame.png")
        times = [*track.times, *(r.time for r in results), rendered]
        pipeline.write_outputs(folder, track, results, times, source)
    if track.fill is not None:
        err.print(f"{source}: {track.fill.text()}", highlight=False)
    for t in times:
        err.print(t.line(), highlight=False, markup=False)
    for r in results:
        if r.errors_mm is not None:
            err.print(f"{r.lifter.name}: MPJPE {r.errors_mm.mean():.1f} mm over {track.frames} frames", highlight=False)
    out.print(str(target), highlight=False)


def _track_video(path: Path, detector: str, weights: Path | None, max_frames: int | None) -> Any:
    from h2ot_core.device import usable_cpus
    from h2ot_core.video.decode import video_info
    from h2ot_core.video.detector import PoseDetector
    from h2ot_core.video.pipeline import track_video
    from h2ot_core.video.weights import detector_files

    video_info(path)  # an unreadable input fails before any weights are looked for
    det_file, pose_file = detector_files(detector, weights, progress=_progress())
    threads = usable_cpus()
    return track_video(path, PoseDetector(det_file, pose_file, threads=threads), max_frames=max_frames,
                       detail=f"{detector} (onnxruntime, {threads} threads), ")


def campaign_figure(engine: Any, campaign: str, figures: Path) -> tuple[Path | None, str]:
    """The report's qualitative figure: the campaign's best pruned trial beside its unpruned baseline on a test
    clip of the campaign's dataset, as ``figures/qualitative.gif``. Returns (path or None, a caption or why not)."""
    from h2ot_core.errors import H2OTError
    from results.queries import leaderboard

    rows = leaderboard(engine, campaign=campaign, status=[TrialStatus.COMPLETE], sort="mpjpe")
    pruned = [r for r in rows if r["pruner"] != "none" and r.get("checkpoint_uri")]
    if not pruned:
        return None, "no complete pruned trial with a checkpoint"
    best = pruned[0]
    same = {"backbone": [best["backbone"]], "frames": [best["frames"]], "dataset": [best["dataset"]],
            "pruner": ["none"]}
    base = [r for r in leaderboard(engine, filters=same, status=[TrialStatus.COMPLETE], sort="mpjpe") if r.get("checkpoint_uri")]
    if not base:
        return None, f"no complete unpruned {best['backbone']}-{best['frames']} trial with a checkpoint to compare with"
    if best["dataset"] not in GT_DATASETS:
        return None, f"dataset {best['dataset']} has no Human3.6M-camera test clip to render"
    try:
        from h2ot_core.data.loading import load_dataset
        from h2ot_core.video import pipeline
        from orchestrator.datasets import data_dir

        lifters = lifters_for(_from_rows([base[0], best]), device_for("cpu", "fp32"), "fp32")
        data = load_dataset(best["dataset"], data_dir(best["dataset"]), **dict(best.get("data") or {}))
        truth = clip_truth(data, data.test[0], REPORT_FRAMES)
        track = pipeline.track_from_normalized(truth.pose2d, truth.image_size, truth.fps)
        results = pipeline.lift_all(lifters, track, gt=truth.poses3d)
        figures.mkdir(parents=True, exist_ok=True)
        path = figures / "qualitative.gif"
        pipeline.render(path, track, results, gt=truth.poses3d, still=figures / "qualitative.png")
    except (H2OTError, OSError) as exc:
        return None, f"could not render it ({exc})"
    scores = ", ".join(f"{r.lifter.name}: {r.errors_mm.mean():.1f} mm" for r in results if r.errors_mm is not None)
    return path, f"{truth.label}, {track.frames} frames; MPJPE on this clip: {scores}"


def register(app: typer.Typer) -> None:
    app.command("video")(video)
