"""The whole path on a real photograph (scikit-image's astronaut, shifted and zoomed into a clip): encode,
decode, the built-in detector's code on stand-in ONNX models of its interface, lifting, render, decode back.

No weights are downloaded: the stand-ins (``standin.py``) have the detector's input/output interface; their
"keypoints" are the crop's brightest row and column, so they follow the image and test the crop geometry.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from tiny import TINY

from h2ot_core.errors import DataError
from h2ot_core.factory import create_model
from h2ot_core.video import pipeline
from h2ot_core.video.decode import read_frames, video_info
from h2ot_core.video.detector import PoseDetector
from h2ot_core.video.render import write_video
from tests.h2ot_core.video.standin import person_detector, pose_model

FRAMES, W, H, FPS = 12, 320, 240, 25


def astronaut_clip(frames: int = FRAMES) -> list[np.ndarray]:
    """A real photograph panned right and zoomed in, frame by frame, as RGB ``uint8 [240, 320, 3]`` frames."""
    from PIL import Image
    from skimage import data

    photo = Image.fromarray(data.astronaut())
    clip = []
    for t in range(frames):
        zoom = 1.0 + 0.25 * t / frames
        w = 480 / zoom
        x0 = 4.0 * t
        clip.append(np.asarray(photo.crop((x0, 20, x0 + w, 20 + w * 0.75)).resize((W, H), Image.BILINEAR)))
    return clip


@pytest.fixture(scope="module")
def standins(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("onnx")
    return person_detector(folder / "det.onnx"), pose_model(folder / "pose.onnx")


def test_crop_and_its_inverse_find_a_bright_point(standins):
    frame = np.zeros((480, 640, 3), np.uint8)
    frame[200:203, 300:303] = 255
    pose = PoseDetector(*standins)(frame)
    assert pose is not None
    np.testing.assert_allclose(pose.keypoints, np.full((17, 2), [301.0, 201.0]), atol=1.5)
    # the stand-in's box (104, 52, 312, 364) in the 416x416 letterbox, at 416/640 of the frame's scale
    np.testing.assert_allclose(pose.box, [160, 80, 480, 560], atol=1e-3)


def test_whole_path_on_a_real_photograph(tmp_path, standins):
    clip = astronaut_clip()
    video = tmp_path / "astronaut.mp4"
    assert write_video(video, clip, FPS) == FRAMES
    info = video_info(video)
    assert (info.width, info.height, info.fps) == (W, H, FPS)
    detector = PoseDetector(*standins, detect_every=4)
    track = pipeline.track_video(video, detector)
    assert track.frames == FRAMES and track.image_size == (W, H) and track.fps == FPS
    assert FRAMES // 4 <= detector.detections < FRAMES  # tracked in between (re-detected when unsure)
    assert [t.stage for t in track.times] == ["decode", "2D"]
    torch.manual_seed(0)
    models = [pipeline.prepare_lifter(create_model("mixste", **TINY["mixste"]), "mixste", device=torch.device("cpu"),
                                      precision="fp32", source="mixste.pt"),
              pipeline.prepare_lifter(create_model("mhformer", **TINY["mhformer"]), "mhformer",
                                      device=torch.device("cpu"), precision="fp32", source="mhformer.pt")]
    results = pipeline.lift_all(models, track)
    assert [r.lifted.poses.shape for r in results] == [(FRAMES, 17, 3)] * 2
    out = tmp_path / "out.mp4"
    rendered = pipeline.render(out, track, results, still=tmp_path / "still.png")
    back = list(read_frames(out))
    assert rendered.frames == len(back) == FRAMES
    from PIL import Image

    with Image.open(tmp_path / "still.png") as still:
        assert back[0].shape == (still.height, still.width, 3)
    assert video_info(out).fps == FPS
    gif = tmp_path / "out.gif"
    pipeline.render(gif, track, results[:1])
    with Image.open(gif) as img:
        assert img.n_frames == FRAMES


def test_a_video_without_a_person_is_one_error(tmp_path, standins):
    video = tmp_path / "dark.mp4"
    write_video(video, [np.zeros((H, W, 3), np.uint8)] * 6, FPS)
    with pytest.raises(DataError, match=r"dark\.mp4: no person found in any of its 6 frames"):
        pipeline.track_video(video, PoseDetector(*standins))


def test_unreadable_videos_are_one_error(tmp_path):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00 ftypisom" + b"garbage" * 100)
    with pytest.raises(DataError, match=r"broken\.mp4: not a readable video"):
        video_info(broken)
    (tmp_path / "frames").mkdir()
    with pytest.raises(DataError, match="no frames"):
        video_info(tmp_path / "frames")
