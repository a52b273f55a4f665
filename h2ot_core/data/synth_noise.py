"""Random processes for the synthetic generator: smooth AR(1) noise and CPN-like 2D detection errors.

AR(1) series are made by FFT-convolving white noise with the process's impulse response, so no
per-frame Python loop is needed. Detector model (pose-data.md §4.4): per-joint σ of 2-5 px scaled
by 5 m / depth, AR(1) with ρ ≈ 0.8-0.9 per 20 ms frame, white jitter, a shared bounding-box offset,
bursts of 15-40 px outliers on single joints, and rare left/right swaps.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from h2ot_core.data.skeleton import JOINTS_LEFT_17, JOINTS_RIGHT_17

#: per-joint detection σ in pixels at 5 m (torso/head tight, extremities loose)
JOINT_SIGMA_PX = np.array([2.5, 2.5, 3.5, 5.0, 2.5, 3.5, 5.0, 2.5, 2.5, 2.5, 3.0,
                           3.0, 3.5, 5.5, 3.0, 3.5, 5.5])
OUTLIER_RATE = 0.005  # fraction of joint-frames inside an outlier burst
SWAP_RATE = 0.001  # fraction of frames with left/right limbs exchanged


def ar1(rng: np.random.Generator, shape: Sequence[int], rho: float) -> np.ndarray:
    """Unit-variance stationary AR(1) noise of ``shape`` (first axis = time) with lag-1 correlation ``rho``."""
    n = int(shape[0])
    taps = int(np.ceil(np.log(1e-4) / np.log(rho))) if rho > 0 else 1
    white = rng.standard_normal((n + taps, *shape[1:]))
    kernel = np.sqrt(1.0 - rho**2) * rho ** np.arange(taps + 1)
    size = n + 2 * taps + 1
    spectrum = np.fft.rfft(white, size, axis=0) * np.fft.rfft(kernel, size).reshape(-1, *[1] * (len(shape) - 1))
    # drop the first ``taps`` outputs: they have not yet seen a full kernel of history
    return np.fft.irfft(spectrum, size, axis=0)[taps:taps + n]


def detector_noise(rng: np.random.Generator, depth: np.ndarray) -> np.ndarray:
    """Pixel error [T, 17, 2] for a sequence whose joints lie ``depth`` [T, 17] metres from the camera."""
    frames, joints = depth.shape
    rho = rng.uniform(0.8, 0.9)
    sigma = JOINT_SIGMA_PX * (5.0 / np.maximum(depth, 0.5))
    noise = ar1(rng, (frames, joints, 2), rho) * sigma[..., None]
    noise += rng.normal(0.0, 0.7, size=(frames, joints, 2))
    noise += ar1(rng, (frames, 1, 2), rng.uniform(0.8, 0.9))
    return noise + _outliers(rng, frames, joints)


def _outliers(rng: np.random.Generator, frames: int, joints: int) -> np.ndarray:
    """Bursts of 1-5 frames with a 15-40 px error on one joint, ≈ OUTLIER_RATE of joint-frames."""
    out = np.zeros((frames, joints, 2))
    starts_t, starts_j = np.nonzero(rng.random((frames, joints)) < OUTLIER_RATE / 3.0)
    if starts_t.size == 0:
        return out
    lengths = rng.integers(1, 6, size=starts_t.size)
    angle = rng.uniform(0, 2 * np.pi, size=starts_t.size)
    offset = rng.uniform(15.0, 40.0, size=starts_t.size)[:, None] * np.stack([np.cos(angle), np.sin(angle)], -1)
    steps = np.arange(5)
    t = starts_t[:, None] + steps[None, :]
    keep = (steps[None, :] < lengths[:, None]) & (t < frames)
    rows = np.broadcast_to(np.arange(starts_t.size)[:, None], t.shape)[keep]
    out[t[keep], starts_j[rows]] = offset[rows]
    return out


def swap_limbs(rng: np.random.Generator, pixels: np.ndarray) -> np.ndarray:
    """``pixels`` [T, 17, 2] with left and right joints exchanged on ≈ SWAP_RATE of frames."""
    swapped = np.flatnonzero(rng.random(pixels.shape[0]) < SWAP_RATE)
    out = pixels.copy()
    left, right = np.array(JOINTS_LEFT_17), np.array(JOINTS_RIGHT_17)
    out[np.ix_(swapped, left)] = pixels[np.ix_(swapped, right)]
    out[np.ix_(swapped, right)] = pixels[np.ix_(swapped, left)]
    return out
