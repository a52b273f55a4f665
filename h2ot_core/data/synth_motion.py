"""Kinematic motion for the synthetic Human3.6M generator (pose-data.md §4.1-4.2), vectorised over frames.

The state is one rotation per bone (flexion, abduction, twist in radians) plus a planar root path;
positions come from forward kinematics with a subject's fixed bone lengths, so bone lengths are
exactly constant over time. A sequence is a chain of segments (still, walk, gesture, sit, burst)
cross-faded with 0.3-0.5 s cosine blends; every segment runs on a slowly time-warped clock and all
angles carry small smooth noise, so nothing repeats exactly.

Body frame: x forward, y left, z up (world is z-up, metres, 50 Hz).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from h2ot_core.data.skeleton import PARENTS_17, bone_lengths_17
from h2ot_core.data.synth_noise import ar1

FPS = 50
ANKLE_HEIGHT = 0.08  # m: the H36M "foot" joint is the ankle, this far above the floor when planted
SEGMENT_NAMES: tuple[str, ...] = ("still", "walk", "gesture", "sit", "burst")
#: segment kind -> (min, max) duration in seconds
DURATION_S = {"still": (2.0, 5.0), "walk": (3.0, 7.0), "gesture": (2.0, 5.0), "sit": (5.0, 8.0),
              "burst": (1.0, 2.0)}
#: H36M base action -> probability of each segment kind (order of SEGMENT_NAMES)
ACTION_MIX: dict[str, tuple[float, ...]] = {
    "Directions": (0.20, 0.15, 0.45, 0.05, 0.15), "Discussion": (0.20, 0.10, 0.50, 0.10, 0.10),
    "Eating": (0.15, 0.05, 0.45, 0.30, 0.05), "Greeting": (0.15, 0.20, 0.40, 0.05, 0.20),
    "Phoning": (0.20, 0.20, 0.40, 0.15, 0.05), "Photo": (0.25, 0.15, 0.40, 0.05, 0.15),
    "Posing": (0.40, 0.10, 0.35, 0.05, 0.10), "Purchases": (0.15, 0.30, 0.40, 0.05, 0.10),
    "Sitting": (0.10, 0.05, 0.30, 0.50, 0.05), "SittingDown": (0.10, 0.05, 0.25, 0.55, 0.05),
    "Smoking": (0.25, 0.10, 0.45, 0.15, 0.05), "Waiting": (0.50, 0.15, 0.20, 0.10, 0.05),
    "WalkDog": (0.10, 0.55, 0.15, 0.00, 0.20), "Walking": (0.10, 0.65, 0.10, 0.00, 0.15),
    "WalkTogether": (0.10, 0.60, 0.20, 0.00, 0.10),
}

# Rest direction of the bone ending at each joint (body frame, unit length after normalising).
_REST_DIR = np.array([
    (0, 0, 0), (0, -1, 0), (0, 0, -1), (0, 0, -1), (0, 1, 0), (0, 0, -1), (0, 0, -1), (0, 0, 1),
    (0, 0, 1), (0.26, 0, 0.97), (-0.26, 0, 0.97), (0, 0.97, -0.24), (0, 0, -1), (0, 0, -1),
    (0, -0.97, -0.24), (0, 0, -1), (0, 0, -1),
], dtype=np.float64)
# Angle signs per bone so that positive flexion/abduction/twist are anatomical (forward, outward,
# outward-twist) on both sides; bones with zero signs never rotate.
_SIGN = np.zeros((17, 3))
_SIGN[0] = (1, 1, 1)  # root: forward lean, roll, heading
_SIGN[[2, 5]] = ((-1, -1, -1), (-1, 1, 1))  # hips (thigh bones)
_SIGN[[3, 6], 0] = 1  # knees bend the shin backwards
_SIGN[[7, 8, 9]] = 1  # lower/upper spine, neck: forward bend, lateral, turn left
_SIGN[[12, 15]] = ((-1, 1, 1), (-1, -1, -1))  # shoulders (upper-arm bones)
_SIGN[[13, 16], 0] = -1  # elbows bend the forearm forwards
R_HIP, R_KNEE, L_HIP, L_KNEE, SPINE, THORAX, NECK = 2, 3, 5, 6, 7, 8, 9
L_SHOULDER, L_ELBOW, R_SHOULDER, R_ELBOW = 12, 13, 15, 16


@dataclass
class Segment:
    """One segment's motion on its own frames: angles [n, 17, 3] rad, planar speed [n] m/s,
    heading offset [n] rad (relative to the path tangent; 0 = facing the walking direction)."""

    angles: np.ndarray
    speed: np.ndarray
    heading: np.ndarray


@dataclass
class Motion:
    """A generated sequence: world joints [T, 17, 3] m, root-relative mean joint speed [T] m/s,
    segment label ids [T] (index into SEGMENT_NAMES)."""

    world: np.ndarray
    speed: np.ndarray
    segment: np.ndarray


def _smoothstep(u: np.ndarray) -> np.ndarray:
    u = np.clip(u, 0.0, 1.0)
    return u * u * (3.0 - 2.0 * u)


def _keyframes(rng: np.random.Generator, tau: np.ndarray, gap: tuple[float, float], low: np.ndarray,
               high: np.ndarray) -> np.ndarray:
    """Values [n, *low.shape] moving smoothly (zero velocity at keys) through random keys in [low, high]
    placed every ``gap`` seconds of the warped clock ``tau`` [n]."""
    span = float(tau[-1] - tau[0]) + gap[1]
    times = tau[0] + np.cumsum(np.concatenate([[-gap[1]], rng.uniform(*gap, size=int(span / gap[0]) + 2)]))
    values = rng.uniform(low, high, size=(times.size, *np.shape(low)))
    i = np.clip(np.searchsorted(times, tau, side="right") - 1, 0, times.size - 2)
    s = _smoothstep((tau - times[i]) / (times[i + 1] - times[i]))
    s = s.reshape(-1, *[1] * np.ndim(low))
    return values[i] * (1.0 - s) + values[i + 1] * s


def _base_pose(rng: np.random.Generator, n: int) -> np.ndarray:
    """A relaxed standing pose [n, 17, 3] with per-segment variation (radians)."""
    a = np.zeros((n, 17, 3))
    d = np.deg2rad
    a[:, [R_HIP, L_HIP], 0] = d(rng.uniform(0, 4, 2))
    a[:, [R_HIP, L_HIP], 1] = d(rng.uniform(1, 5, 2))
    a[:, [R_KNEE, L_KNEE], 0] = d(rng.uniform(2, 8, 2))
    a[:, [L_SHOULDER, R_SHOULDER], 1] = d(rng.uniform(5, 12, 2))
    a[:, [L_ELBOW, R_ELBOW], 0] = d(rng.uniform(8, 25, 2))
    a[:, NECK, 0] = d(rng.uniform(-5, 10))
    return a


def _still(rng: np.random.Generator, tau: np.ndarray) -> Segment:
    n, d = tau.size, np.deg2rad
    a = _base_pose(rng, n)
    sway = np.sin(2 * np.pi * rng.uniform(0.2, 0.5) * tau + rng.uniform(0, 2 * np.pi))
    a[:, 0, 1] += d(rng.uniform(1, 3)) * sway
    a[:, [R_HIP, L_HIP], 1] += d(rng.uniform(1, 3)) * sway[:, None] * np.array([-1, 1])
    a[:, NECK, 2] += _keyframes(rng, tau, (1.5, 4.0), d(-30), d(30))
    a[:, [L_ELBOW, R_ELBOW], 0] += _keyframes(rng, tau, (2.0, 5.0), d(np.zeros(2)), d(np.full(2, 30)))
    return Segment(a, np.zeros(n), np.full(n, rng.uniform(-np.pi / 2, np.pi / 2)))


def _walk(rng: np.random.Generator, tau: np.ndarray) -> Segment:
    n, d = tau.size, np.deg2rad
    a = _base_pose(rng, n)
    freq = rng.uniform(0.8, 1.0)  # strides per second
    phi = 2 * np.pi * freq * tau + rng.uniform(0, 2 * np.pi)
    hip_amp, arm_amp = d(rng.uniform(20, 30)), d(rng.uniform(15, 25))
    for hip, knee, shift in ((R_HIP, R_KNEE, 0.0), (L_HIP, L_KNEE, np.pi)):
        a[:, hip, 0] = d(5) + hip_amp * np.sin(phi + shift)
        a[:, knee, 0] = d(5) + d(rng.uniform(50, 62)) * np.maximum(0.0, np.cos(phi + shift - 0.3)) ** 2
    a[:, R_SHOULDER, 0] = arm_amp * np.sin(phi + np.pi)
    a[:, L_SHOULDER, 0] = arm_amp * np.sin(phi)
    a[:, [L_ELBOW, R_ELBOW], 0] += d(10) * (1 + np.sin(np.stack([phi, phi + np.pi], -1)))
    a[:, SPINE, 2] = d(5) * np.sin(phi)
    a[:, 0, 0] = d(rng.uniform(2, 5))
    stride = rng.uniform(1.1, 1.4)  # metres per stride
    speed = np.gradient(phi) / (2 * np.pi) * FPS * stride
    return Segment(a, speed, np.zeros(n))


def _gesture(rng: np.random.Generator, tau: np.ndarray) -> Segment:
    d = np.deg2rad
    seg = _still(rng, tau)
    low_arm, high_arm = d(np.array([-20.0, 5, -30])), d(np.array([100.0, 80, 30]))
    for shoulder, elbow in ((L_SHOULDER, L_ELBOW), (R_SHOULDER, R_ELBOW)):
        seg.angles[:, shoulder] = _keyframes(rng, tau, (0.3, 1.5), low_arm, high_arm)
        seg.angles[:, elbow, 0] = _keyframes(rng, tau, (0.3, 1.5), d(10), d(130))
    seg.angles[:, [SPINE, NECK]] += _keyframes(rng, tau, (0.8, 2.0), d(np.array([[-3.0, -5, -15]] * 2)),
                                               d(np.array([[10.0, 5, 15]] * 2)))
    return seg


def _sit(rng: np.random.Generator, tau: np.ndarray) -> Segment:
    """Stand, sit down over 1-2 s, stay seated (arms moving), stand up over 1-2 s."""
    d = np.deg2rad
    seg = _gesture(rng, tau)
    a, length = seg.angles, tau[-1] - tau[0] + 1e-9
    down, up = rng.uniform(1.0, 2.0, 2)
    t_down = tau[0] + rng.uniform(0.1, 0.2) * length
    t_up = max(t_down + down + 0.5, tau[0] + rng.uniform(0.65, 0.75) * length)
    seated = _smoothstep((tau - t_down) / down) - _smoothstep((tau - t_up) / up)
    moving = np.sin(np.pi * np.clip((tau - t_down) / down, 0, 1)) + np.sin(np.pi * np.clip((tau - t_up) / up, 0, 1))
    hips, knees = d(rng.uniform(85, 95)), d(rng.uniform(85, 100))
    a[:, [R_HIP, L_HIP], 0] = a[:, [R_HIP, L_HIP], 0] * (1 - seated[:, None]) + hips * seated[:, None]
    a[:, [R_KNEE, L_KNEE], 0] = a[:, [R_KNEE, L_KNEE], 0] * (1 - seated[:, None]) + knees * seated[:, None]
    # lean the trunk forward to keep balance while the pelvis moves, a little while seated
    a[:, 0, 0] += d(25) * moving + d(rng.uniform(3, 10)) * seated
    return seg


def _burst(rng: np.random.Generator, tau: np.ndarray) -> Segment:
    """One to three kicks, punches or quick turns of 0.3-0.8 s on a relaxed stance."""
    d = np.deg2rad
    seg = _still(rng, tau)
    a, heading = seg.angles, seg.heading
    length = tau[-1] - tau[0]
    for _ in range(rng.integers(1, 4)):
        dur = rng.uniform(0.3, 0.8)
        t0 = tau[0] + rng.uniform(0, max(length - dur, 1e-3))
        u = np.clip((tau - t0) / dur, 0, 1)
        bump = np.sin(np.pi * u) ** 2
        kind = rng.integers(3)
        if kind == 0:  # kick: thigh up, shin folds then snaps out
            hip, knee = (R_HIP, R_KNEE) if rng.random() < 0.5 else (L_HIP, L_KNEE)
            a[:, hip, 0] += d(rng.uniform(60, 90)) * bump
            a[:, knee, 0] += d(rng.uniform(60, 90)) * np.sin(np.pi * np.clip(u * 1.6, 0, 1)) ** 2
        elif kind == 1:  # punch: arm from guard to full extension and back
            shoulder, elbow = (R_SHOULDER, R_ELBOW) if rng.random() < 0.5 else (L_SHOULDER, L_ELBOW)
            a[:, shoulder, 0] += d(rng.uniform(70, 90)) * bump
            a[:, elbow, 0] += d(rng.uniform(80, 110)) * np.sin(np.pi * np.clip(u * 1.6, 0, 1)) ** 2
        else:  # quick turn on the spot
            heading += rng.choice([-1, 1]) * rng.uniform(np.pi / 2, np.pi) * _smoothstep(u)
            a[:, [R_HIP, L_HIP], 0] += d(15) * bump[:, None] * np.array([1, -1])
    return seg


SEGMENTS: dict[str, Callable[[np.random.Generator, np.ndarray], Segment]] = {
    "still": _still, "walk": _walk, "gesture": _gesture, "sit": _sit, "burst": _burst,
}


def _rotations(angles: np.ndarray) -> np.ndarray:
    """Per-bone rotation matrices [n, 17, 3, 3] = Rz(twist) · Ry(flex) · Rx(abd) with anatomical signs."""
    flex, abd, twist = np.moveaxis(angles * _SIGN, -1, 0)
    mats = []
    for angle, (i, j) in ((twist, (0, 1)), (flex, (2, 0)), (abd, (1, 2))):
        c, s = np.cos(angle), np.sin(angle)
        m = np.zeros((*angle.shape, 3, 3))
        m[..., i, i] = m[..., j, j] = c
        m[..., i, j], m[..., j, i] = -s, s
        m[..., 3 - i - j, 3 - i - j] = 1.0
        mats.append(m)
    return mats[0] @ mats[1] @ mats[2]


def forward_kinematics(angles: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Joint positions [n, 17, 3] relative to the pelvis from bone angles [n, 17, 3] (bone 0 = root
    orientation) and bone lengths [17] (m)."""
    offsets = _REST_DIR / np.maximum(np.linalg.norm(_REST_DIR, axis=1, keepdims=True), 1e-12)
    offsets = offsets * lengths[:, None]
    rot = _rotations(angles)
    frames = [rot[:, 0]]
    pos = [np.zeros((angles.shape[0], 3))]
    for j in range(1, 17):
        p = PARENTS_17[j]
        frames.append(frames[p] @ rot[:, j])
        pos.append(pos[p] + frames[j] @ offsets[j])
    return np.stack(pos, axis=1)


def _ellipse_path(rng: np.random.Generator, distance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pelvis ground positions [n, 2] after walking ``distance`` [n] m along a random ellipse inside the
    region every H36M camera sees, and the unwrapped tangent heading [n] rad."""
    centre = np.array([0.1, 0.45])
    radii = np.array([rng.uniform(0.55, 0.85), rng.uniform(0.45, 0.7)])
    direction, start = rng.choice([-1.0, 1.0]), rng.uniform(0, 2 * np.pi)
    grid = np.linspace(0, 2 * np.pi, 2049)
    step = np.hypot(*(np.diff(np.stack([np.cos(grid), np.sin(grid)], 0) * radii[:, None], axis=1)))
    arc = np.concatenate([[0.0], np.cumsum(step)])
    laps, rest = np.divmod(distance, arc[-1])
    theta = start + direction * (2 * np.pi * laps + np.interp(rest, arc, grid))
    xy = centre + radii * np.stack([np.cos(theta), np.sin(theta)], -1)
    tangent = direction * radii * np.stack([-np.sin(theta), np.cos(theta)], -1)
    return xy, np.unwrap(np.arctan2(tangent[:, 1], tangent[:, 0]))


def _plan(rng: np.random.Generator, action: str, frames: int) -> list[tuple[str, int, int]]:
    """Segments (kind, start, end) covering ``frames`` frames, kinds drawn from the action's mix."""
    mix = np.asarray(ACTION_MIX[action.split(" ")[0]])
    plan, start = [], 0
    while start < frames:
        kind = SEGMENT_NAMES[rng.choice(len(mix), p=mix / mix.sum())]
        length = int(rng.uniform(*DURATION_S[kind]) * FPS)
        end = frames if frames - (start + length) < FPS else start + length
        plan.append((kind, start, end))
        start = end
    return plan


def generate_motion(rng: np.random.Generator, subject: str, action: str, frames: int) -> Motion:
    """World joints of ``subject`` performing (a synthetic version of) ``action`` for ``frames`` frames."""
    plan = _plan(rng, action, frames)
    warp = np.clip(np.exp(0.35 * ar1(rng, (frames,), 0.995)), 0.5, 2.0)
    tau = np.cumsum(warp) / FPS  # warped clock in seconds
    angles, speed, heading = np.zeros((frames, 17, 3)), np.zeros(frames), np.zeros(frames)
    weights = np.zeros((len(plan), frames))
    t = np.arange(frames)
    for k, (kind, start, end) in enumerate(plan):
        half = rng.uniform(0.15, 0.25) * FPS
        up = _smoothstep((t - (start - half)) / (2 * half)) if start > 0 else np.ones(frames)
        down = 1 - _smoothstep((t - (end - half)) / (2 * half)) if end < frames else np.ones(frames)
        weights[k] = up * down
        span = np.nonzero(weights[k] > 0)[0]
        seg = SEGMENTS[kind](rng, tau[span])
        amp = rng.uniform(0.9, 1.1)  # amplitude drift between occurrences
        w = weights[k, span]
        angles[span] += w[:, None, None] * seg.angles * amp
        speed[span] += w * seg.speed
        heading[span] += w * seg.heading
    angles += np.deg2rad(0.7) * ar1(rng, (frames, 17, 3), 0.95) * (_SIGN != 0)
    xy, tangent = _ellipse_path(rng, np.cumsum(speed) / FPS)
    angles[:, 0, 2] += tangent + heading
    body = forward_kinematics(angles, np.asarray(bone_lengths_17(subject)))
    # plant the lower ankle at ANKLE_HEIGHT: no floating, no sinking, sitting lowers the pelvis
    pelvis_z = ANKLE_HEIGHT - np.minimum(body[:, 3, 2], body[:, 6, 2])
    world = body + np.concatenate([xy, pelvis_z[:, None]], -1)[:, None, :]
    rel = body[:, 1:] - body[:, :1]
    joint_speed = np.linalg.norm(np.gradient(rel, axis=0), axis=-1).mean(-1) * FPS if frames > 1 else np.zeros(1)
    kind_ids = np.array([SEGMENT_NAMES.index(kind) for kind, _, _ in plan])
    return Motion(world, joint_speed.astype(np.float32), kind_ids[np.argmax(weights, axis=0)].astype(np.int8))
