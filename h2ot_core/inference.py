"""Inference on arrays: batching, test-time flip augmentation, a device and a precision.

In ``bf16``/``fp16`` the model's Linear and Conv weights are stored in that dtype and the passes run under
autocast (:func:`h2ot_core.device.inference_model`); outputs are float32 either way. On a CPU with
AVX512-BF16 this is the fastest accurate bf16 path we measured (``benchmarks/precision.py``); ``compile``
adds ``torch.compile`` of the backbone's blocks on top (:func:`h2ot_core.device.compile_blocks`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from h2ot_core.checkpoint import load_native
from h2ot_core.device import (
    autocast,
    check_compile,
    check_precision_on,
    compile_blocks,
    inference_model,
    resolve_device,
    to_device,
)
from h2ot_core.errors import ShapeError
from h2ot_core.hourglass import HourglassModel

#: largest |x|, |y| of screen-normalised keypoints accepted: x spans [-1, 1] across the image and y the same
#: scale (a portrait 9:16 frame reaches 1.8; joints outside the frame a little more); pixels are in the hundreds
MAX_NORMALISED = 10.0

# Human3.6M 17-joint layout: left and right limbs swap under a horizontal flip.
JOINTS_LEFT = (4, 5, 6, 11, 12, 13)
JOINTS_RIGHT = (1, 2, 3, 14, 15, 16)


def flip_horizontal(x: Tensor, left: tuple[int, ...] = JOINTS_LEFT, right: tuple[int, ...] = JOINTS_RIGHT) -> Tensor:
    """Mirror ``[..., J, C]`` poses: negate x and swap left/right joints (its own inverse)."""
    x = x.clone()
    x[..., 0] *= -1
    perm = list(range(x.shape[-2]))
    for a, b in zip(left, right, strict=True):
        perm[a], perm[b] = b, a
    return x[..., perm, :]


@torch.inference_mode()
def predict_clips(model: HourglassModel, x: Tensor, *, flip: bool = False, precision: str = "fp32") -> Tensor:
    """``x [B, F, J, C]`` → float32 ``[B, F or 1, J, 3]``; with ``flip`` the flipped pass is averaged in.

    seq2frame models replay the unflipped pass's frame selection on the flipped input (as HoT does);
    seq2seq models select independently, since recovery restores every frame anyway. The passes run under
    ``precision``'s autocast on ``x``'s device.
    """
    with autocast(x.device, precision):
        out = model(x)
        if not flip:
            return out.pose3d.float()
        replay = out.stage_positions if model.pipeline == "seq2frame" else None
        flipped = model(flip_horizontal(x), replay=replay).pose3d
    return (out.pose3d.float() + flip_horizontal(flipped.float())) / 2


def check_input(array: np.ndarray, model: HourglassModel, source: str) -> None:
    bb = model.backbone
    expected = (bb.num_frames, bb.num_joints, bb.in_chans)
    if array.ndim != 4 or tuple(array.shape[1:]) != expected:
        raise ShapeError(f"{source}: expected an array of shape (N, {', '.join(map(str, expected))}) "
                         f"(clips, frames, joints, channels), got {tuple(array.shape)}")
    if not np.isfinite(array).all():
        raise ShapeError(f"{source}: the input contains NaN or inf values")
    largest = float(np.abs(array[..., :2]).max()) if array.size else 0.0
    if largest > MAX_NORMALISED:
        raise ShapeError(f"{source}: coordinates up to {largest:.6g} look like pixels; the model takes screen-"
                         f"normalised keypoints: x / W * 2 - 1 and y / W * 2 - H / W for a W x H image (x in "
                         f"[-1, 1]; h2ot_core.data.cameras.normalize_screen_coordinates)")


def predict_file(ckpt: Path, input_npy: Path, output_npy: Path, *, flip: bool = False, batch_size: int = 16,
                 device: str = "cpu", precision: str = "fp32", compile: bool = False) -> tuple[int, ...]:
    """Read ``(N, F, J, C)`` from ``input_npy``, write the 3D predictions (float32) to ``output_npy``.

    ``device`` (``auto``, ``cpu``, ``cuda[:N]``), ``precision`` and ``compile`` are checked before anything
    is read. With ``compile`` the first batch pays for compiling; a shorter last batch compiles once more.
    """
    dev = resolve_device(device)
    check_precision_on(dev, precision)
    if compile:
        check_compile()
    model, _ = load_native(ckpt)
    if not input_npy.is_file():
        raise ShapeError(f"{input_npy}: no such file")
    try:
        array = np.load(input_npy, allow_pickle=False)
    except ValueError as exc:
        raise ShapeError(f"{input_npy}: not a plain .npy array ({exc})") from None
    check_input(array, model, str(input_npy))
    x = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    model = inference_model(model.to(dev), precision)
    if compile:
        compile_blocks(model)
    preds = [predict_clips(model, to_device(chunk, dev), flip=flip, precision=precision) for chunk in x.split(batch_size)]
    result = torch.cat(preds).cpu().numpy()
    output_npy.parent.mkdir(parents=True, exist_ok=True)
    np.save(output_npy, result)
    return tuple(result.shape)
