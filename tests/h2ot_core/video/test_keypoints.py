"""Keypoint files of other detectors, written from our motion data, read back and mapped to H36M-17."""

from __future__ import annotations

import json

import numpy as np
import pytest

from h2ot_core.errors import DataError, ShapeError
from h2ot_core.video.keypoint_files import read_keypoints
from h2ot_core.video.keypoints import LAYOUTS, fill_missing, to_h36m
from tests.h2ot_core.video.motion import as_coco, as_halpe, h36m_pixels

T = 40
#: H36M joints a COCO or Halpe track carries as they are
SAME = [1, 2, 3, 4, 5, 6, 9, 10, 11, 12, 13, 14, 15, 16]


@pytest.fixture(scope="module")
def truth() -> np.ndarray:
    return h36m_pixels(T)


def _mid(*points: np.ndarray) -> np.ndarray:
    return np.mean(points, axis=0)


def test_coco_rules_joint_by_joint(truth):
    coco = as_coco(truth)
    got, conf = to_h36m(coco, np.ones(coco.shape[:2]), LAYOUTS["coco"])
    expected = {
        0: _mid(coco[:, 11], coco[:, 12]), 1: coco[:, 12], 2: coco[:, 14], 3: coco[:, 16], 4: coco[:, 11],
        5: coco[:, 13], 6: coco[:, 15], 7: _mid(_mid(coco[:, 11], coco[:, 12]), _mid(coco[:, 5], coco[:, 6])),
        8: _mid(coco[:, 5], coco[:, 6]), 9: coco[:, 0], 10: _mid(coco[:, 1], coco[:, 2]), 11: coco[:, 5],
        12: coco[:, 7], 13: coco[:, 9], 14: coco[:, 6], 15: coco[:, 8], 16: coco[:, 10],
    }
    for joint, value in expected.items():
        np.testing.assert_allclose(got[:, joint], value, err_msg=f"H36M joint {joint}")
    # joints that COCO has are the H36M ones; the pelvis of our skeleton is the hips' 3D midpoint, which
    # the perspective projection moves off the 2D midpoint by under a pixel
    np.testing.assert_allclose(got[:, SAME], truth[:, SAME], atol=1e-9)
    np.testing.assert_allclose(got[:, 0], truth[:, 0], atol=1.0)
    assert conf.shape == (T, 17)


def test_halpe_rules_joint_by_joint(truth):
    halpe = as_halpe(truth)
    scores = np.linspace(0.5, 1.0, 26)[None].repeat(T, 0)
    got, conf = to_h36m(halpe, scores, LAYOUTS["halpe"])
    expected = {0: halpe[:, 19], 7: _mid(halpe[:, 18], halpe[:, 19]), 8: halpe[:, 18], 9: halpe[:, 0],
                10: halpe[:, 17], 1: halpe[:, 12], 4: halpe[:, 11], 11: halpe[:, 5], 14: halpe[:, 6]}
    for joint, value in expected.items():
        np.testing.assert_allclose(got[:, joint], value, err_msg=f"H36M joint {joint}")
    assert conf[0, 7] == pytest.approx(min(scores[0, 18], scores[0, 19]))  # a derived joint: its least sure source


def _write_all(tmp_path, truth):
    coco, halpe = as_coco(truth), as_halpe(truth)
    score = 0.9
    files = {}
    # Detectron2 / MMPose COCO results: one record per person, a second, worse person in every frame
    records = []
    for t in range(T):
        flat = np.concatenate([coco[t], np.full((17, 1), score)], axis=1).reshape(-1).tolist()
        records.append({"image_id": t, "category_id": 1, "keypoints": flat, "score": 0.95})
        records.append({"image_id": t, "category_id": 1, "keypoints": [0.0] * 51, "score": 0.2})
    files["detectron2.json"] = (records, None)
    # AlphaPose Halpe-26: image ids are file names
    files["alphapose.json"] = ([{"image_id": f"{t}.jpg", "category_id": 1, "score": 2.5, "idx": [0],
                                 "keypoints": np.concatenate([halpe[t], np.full((26, 1), score)], 1).reshape(-1).tolist()}
                                for t in range(T)], None)
    # MMPose --save-predictions (frame ids from 1)
    files["mmpose.json"] = ({"meta_info": {"dataset_name": "coco"}, "instance_info": [
        {"frame_id": t + 1, "instances": [{"keypoints": coco[t].tolist(), "keypoint_scores": [score] * 17,
                                           "bbox": [[0, 0, 10, 10]], "bbox_score": 0.9}]} for t in range(T)]}, None)
    # YOLO-pose summary() per frame
    files["yolo.json"] = ([[{"name": "person", "class": 0, "confidence": 0.8,
                             "keypoints": {"x": coco[t, :, 0].tolist(), "y": coco[t, :, 1].tolist(),
                                           "visible": [score] * 17}}] for t in range(T)], None)
    files["rtmlib.npy"] = (np.concatenate([coco, np.full((T, 17, 1), score)], -1), None)
    files["h36m.npy"] = (truth, "h36m")
    for name, (content, _) in files.items():
        if name.endswith(".json"):
            (tmp_path / name).write_text(json.dumps(content))
        else:
            np.save(tmp_path / name, content)
    return {name: layout for name, (_, layout) in files.items()}


def test_every_format_reads_back_to_the_same_h36m_track(tmp_path, truth):
    for name, layout_name in _write_all(tmp_path, truth).items():
        kp = read_keypoints(tmp_path / name, layout_name)
        assert kp.pixels.shape[0] == T, name
        h36m, conf = to_h36m(kp.pixels, kp.scores, kp.layout)
        np.testing.assert_allclose(h36m[:, SAME], truth[:, SAME], atol=1e-6, err_msg=name)
        expected_layout = {"alphapose.json": "halpe", "h36m.npy": "h36m"}.get(name, "coco")
        assert kp.layout.name == expected_layout, name
        if name != "h36m.npy":
            assert conf.min() == pytest.approx(0.9), name


def test_missing_frames_and_joints_are_filled_and_counted():
    t = np.arange(20, dtype=np.float64)
    pixels = np.stack([np.stack([t * 2 + j, t * 3 - j], -1) for j in range(17)], axis=1)
    scores = np.ones((20, 17))
    holed = pixels.copy()
    holed[5:8] = np.nan  # three frames without a person
    scores[12, 4] = 0.1  # one low-confidence joint
    holed[0, 2] = np.nan  # a joint missing at the start: held from the next good frame
    filled, conf, report = fill_missing(holed, scores, threshold=0.3, source="x.json")
    np.testing.assert_allclose(filled[5:8], pixels[5:8])  # linear motion is filled exactly
    np.testing.assert_allclose(filled[12, 4], pixels[12, 4])
    np.testing.assert_allclose(filled[0, 2], pixels[1, 2])
    assert (report.joints_filled, report.frames_filled) == (3 * 17 + 1 + 1, 3)
    assert conf[5].max() == 0.0 and conf[12, 4] == pytest.approx(0.1)
    assert "filled 53 joint-frames (3 frames without a person)" in report.text()


def test_a_joint_never_confident_is_kept_as_detected():
    pixels = np.random.default_rng(0).normal(size=(10, 17, 2))
    scores = np.ones((10, 17))
    scores[:, 3] = 0.05  # an ankle out of the picture all along
    filled, _, report = fill_missing(pixels, scores, threshold=0.3, source="x")
    np.testing.assert_allclose(filled, pixels, atol=1e-6)
    assert report.kept_low_confidence == ("RFoot",)


def test_bad_keypoint_files_are_one_line_errors(tmp_path):
    np.save(tmp_path / "wrong.npy", np.zeros((10, 18, 2)))
    with pytest.raises(ShapeError, match=r"wrong.npy: 18 joints per pose; expected 17"):
        read_keypoints(tmp_path / "wrong.npy")
    np.save(tmp_path / "flat.npy", np.zeros((10, 34)))
    with pytest.raises(ShapeError, match=r"flat.npy: the array has shape \(10, 34\)"):
        read_keypoints(tmp_path / "flat.npy")
    np.save(tmp_path / "h.npy", np.zeros((10, 26, 2)))
    with pytest.raises(ShapeError, match="26 joints per pose, but layout 'h36m' has 17"):
        read_keypoints(tmp_path / "h.npy", "h36m")
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(DataError, match=r"broken\.json: not readable JSON"):
        read_keypoints(tmp_path / "broken.json")
    (tmp_path / "odd.json").write_text(json.dumps([{"image_id": 0, "keypoints": [1, 2]}]))
    with pytest.raises(ShapeError, match="record 0: 'keypoints' has 2 numbers"):
        read_keypoints(tmp_path / "odd.json")
    with pytest.raises(DataError, match="no person found in any of its 4 frames"):
        fill_missing(np.full((4, 17, 2), np.nan), np.zeros((4, 17)), threshold=0.3, source="empty.npy")
