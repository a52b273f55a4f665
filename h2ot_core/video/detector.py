"""The built-in 2D detector: a YOLOX person detector + RTMPose (SimCC) on ONNX Runtime, one person per frame.

The models are OpenMMLab's ONNX exports that rtmlib uses (``Body(mode="lightweight")``: YOLOX-tiny at
416×416 + RTMPose-s at 256×192; ``rtmpose-m`` swaps in RTMPose-m), run here with ONNX Runtime and NumPy/Pillow
only (no OpenCV): pre-processing as in MMPose's configs — YOLOX takes the BGR image, letterboxed to the
top-left corner on grey 114, unnormalised; RTMPose takes an RGB crop of the person box enlarged 1.25× and
widened to 3:4, normalised by ImageNet's mean and std — and the SimCC read-out (argmax per axis at
half-pixel bins, score = mean of both maxima). Weights: :mod:`h2ot_core.video.weights`.

Tracking: the detector runs on the first frame and every ``detect_every`` frames, or when the last pose was
unsure; in between, the person's box is the box of the last pose's keypoints (as rtmlib's ``PoseTracker``).
Where several people are found, the one overlapping the last box most is followed (else the surest).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from h2ot_core.errors import DataError

#: COCO-17 keypoints (what the body models output)
NUM_KEYPOINTS = 17
_MEAN = np.array([123.675, 116.28, 103.53], np.float32)
_STD = np.array([58.395, 57.12, 57.375], np.float32)
_PAD_VALUE = 114
_BOX_PADDING = 1.25
_SIMCC_SPLIT = 2.0


@dataclass(frozen=True)
class Pose2D:
    """One person: ``keypoints [17, 2]`` pixels (COCO-17), ``scores [17]``, ``box`` (x1, y1, x2, y2) pixels."""

    keypoints: np.ndarray
    scores: np.ndarray
    box: np.ndarray


def _session(path: Path, threads: int | None):  # -> onnxruntime.InferenceSession
    try:
        import onnxruntime as ort
    except ImportError:
        raise DataError("the built-in 2D detector needs ONNX Runtime: pip install 'h2ot-lab[video]' "
                        "(or give a keypoints file instead of a video)") from None
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for unreadable graphs
        raise DataError(f"{path}: not a usable ONNX model ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None


def _iou(a: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1, y1 = np.maximum(a[0], boxes[:, 0]), np.maximum(a[1], boxes[:, 1])
    x2, y2 = np.minimum(a[2], boxes[:, 2]), np.minimum(a[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = lambda b: (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])  # noqa: E731
    return inter / np.maximum(area(a) + area(boxes) - inter, 1e-9)


class PoseDetector:
    """Top-down 2D pose of one person per RGB frame (see the module docstring).

    Args:
        det_model, pose_model: the ONNX files (YOLOX end-to-end export with NMS: ``dets [1, N, 5]``;
            RTMPose: ``simcc_x [1, 17, 2W]``, ``simcc_y [1, 17, 2H]``).
        box_threshold: least detection score of a person box.
        keypoint_threshold: least mean keypoint score for a pose to be kept (and for tracking from it).
        detect_every: frames between two runs of the person detector while a person is tracked.
        threads: ONNX Runtime threads (``None``: its default, every core).
    """

    def __init__(self, det_model: Path, pose_model: Path, *, box_threshold: float = 0.3,
                 keypoint_threshold: float = 0.3, detect_every: int = 10, threads: int | None = None):
        self.det, self.pose = _session(det_model, threads), _session(pose_model, threads)
        det_in, pose_in = self.det.get_inputs()[0], self.pose.get_inputs()[0]
        self.det_size = (int(det_in.shape[3]), int(det_in.shape[2]))  # (w, h)
        self.pose_size = (int(pose_in.shape[3]), int(pose_in.shape[2]))
        self.box_threshold, self.keypoint_threshold = box_threshold, keypoint_threshold
        self.detect_every = max(1, detect_every)
        self._last: Pose2D | None = None
        self._since_detection = 0
        self.detections = 0  # how many frames ran the person detector

    # -- person boxes ------------------------------------------------------------------------------------
    def boxes(self, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Person boxes ``[N, 4]`` (pixels) and scores ``[N]`` above ``box_threshold``."""
        from PIL import Image

        w, h = self.det_size
        ratio = min(w / frame.shape[1], h / frame.shape[0])
        size = (max(1, int(frame.shape[1] * ratio)), max(1, int(frame.shape[0] * ratio)))
        canvas = np.full((h, w, 3), _PAD_VALUE, np.uint8)
        canvas[:size[1], :size[0]] = np.asarray(Image.fromarray(frame).resize(size, Image.Resampling.BILINEAR))
        blob = canvas[..., ::-1].transpose(2, 0, 1)[None].astype(np.float32)  # BGR, as YOLOX was trained
        dets = self.det.run(None, {self.det.get_inputs()[0].name: blob})[0]
        if dets.ndim != 3 or dets.shape[-1] != 5:
            raise DataError(f"the person detector returned shape {dets.shape}; expected an end-to-end YOLOX "
                            f"export (dets of shape (1, N, 5))")
        dets = dets[0]
        keep = dets[:, 4] >= self.box_threshold
        return dets[keep, :4] / ratio, dets[keep, 4]

    # -- one person's keypoints ----------------------------------------------------------------------------
    def _crop(self, frame: np.ndarray, box: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The model input of ``box``: normalised CHW crop, its centre and its size in image pixels."""
        from PIL import Image

        w, h = self.pose_size
        centre = (box[:2] + box[2:]) / 2
        size = np.maximum(box[2:] - box[:2], 8.0) * _BOX_PADDING  # a degenerate box still gives a crop
        aspect = w / h
        size = np.array([size[0], size[0] / aspect]) if size[0] > size[1] * aspect else np.array([size[1] * aspect, size[1]])
        scale = size / np.array([w, h])  # image pixels per crop pixel
        # output pixel (u, v) samples the image at centre + ((u, v) - crop centre) * scale
        coeffs = (scale[0], 0.0, centre[0] - w / 2 * scale[0], 0.0, scale[1], centre[1] - h / 2 * scale[1])
        crop = Image.fromarray(frame).transform((w, h), Image.Transform.AFFINE, coeffs, resample=Image.Resampling.BILINEAR)
        x = (np.asarray(crop, np.float32) - _MEAN) / _STD
        return x.transpose(2, 0, 1)[None], centre, size

    def keypoints(self, frame: np.ndarray, box: np.ndarray) -> Pose2D:
        blob, centre, size = self._crop(frame, box)
        simcc_x, simcc_y = self.pose.run(None, {self.pose.get_inputs()[0].name: blob})[:2]
        x, y = simcc_x[0], simcc_y[0]
        locs = np.stack([x.argmax(-1), y.argmax(-1)], -1).astype(np.float64) / _SIMCC_SPLIT
        scores = 0.5 * (x.max(-1) + y.max(-1))
        w, h = self.pose_size
        pixels = locs / np.array([w, h]) * size + centre - size / 2
        return Pose2D(pixels, scores.astype(np.float64), np.asarray(box, np.float64))

    def __call__(self, frame: np.ndarray) -> Pose2D | None:
        """The tracked person's pose in ``frame`` (RGB ``uint8 [H, W, 3]``), or ``None`` when nobody is found."""
        last = self._last
        tracked = last is not None and self._since_detection < self.detect_every
        if tracked and last is not None:
            box = self._box_of(last)
            self._since_detection += 1
        else:
            boxes, scores = self.boxes(frame)
            self.detections += 1
            self._since_detection = 1
            if not len(boxes):
                self._last = None
                return None
            overlap = _iou(last.box, boxes) if last is not None else np.zeros(len(boxes))
            box = boxes[int(np.argmax(overlap))] if overlap.max() > 0.3 else boxes[int(np.argmax(scores))]
        pose = self.keypoints(frame, box)
        if pose.scores.mean() < self.keypoint_threshold:
            self._last = None  # unsure: look for the person again on the next frame
            return pose if not tracked else self(frame)
        self._last = pose
        return pose

    def _box_of(self, pose: Pose2D) -> np.ndarray:
        sure = pose.keypoints[pose.scores >= self.keypoint_threshold]
        pts = sure if len(sure) >= 2 else pose.keypoints
        return np.concatenate([pts.min(0), pts.max(0)])
