"""Pruning schedules: ``LAYER:TOKENS[,LAYER:TOKENS...]``.

``LAYER`` is the index of the block *before which* tokens are pruned (the official
``layer_index``: block 0 always sees every frame), ``TOKENS`` the number of frame tokens kept from
there on. One stage is HoT (``3:81``); several are H2OT (``2:121,4:61``).
"""

from __future__ import annotations

from dataclasses import dataclass

from h2ot_core.contracts import PIPELINES, Pipeline
from h2ot_core.errors import ConfigError


class ScheduleError(ConfigError):
    """A schedule that cannot be used with the model it was given for."""


@dataclass(frozen=True)
class Stage:
    layer: int
    tokens: int


def parse_schedule(text: str | None) -> tuple[Stage, ...]:
    """Parse ``"2:121,4:61"`` into stages; ``""``/``None``/``"none"`` is the empty schedule."""
    if text is None:
        return ()
    text = str(text).strip()
    if text in ("", "none", "-"):
        return ()
    stages = []
    for part in text.split(","):
        layer, sep, tokens = part.strip().partition(":")
        if not sep or not layer.strip().isdigit() or not tokens.strip().isdigit():
            raise ScheduleError(f"Bad schedule {text!r}: expected LAYER:TOKENS[,LAYER:TOKENS...], got {part!r}")
        stages.append(Stage(int(layer), int(tokens)))
    return tuple(stages)


def format_schedule(stages: tuple[Stage, ...]) -> str:
    """Canonical text form; the inverse of :func:`parse_schedule`."""
    return ",".join(f"{s.layer}:{s.tokens}" for s in stages)


def tps_indices(current: int, keep: int) -> list[int]:
    """Uniform sampling: the middle frame of each of ``keep`` equal groups of ``current`` frames."""
    return [int((k + 0.5) * current / keep) for k in range(keep)]


def validate_schedule(
    stages: tuple[Stage, ...], *, frames: int, depth: int, pipeline: Pipeline, pruner: str = "tpc"
) -> None:
    """Refuse a schedule that cannot run, before any model is built.

    Checks: layers strictly increasing within ``1..depth-1``; tokens strictly decreasing, at least 1
    and below ``frames``; for ``seq2frame`` an odd frame count (so there is a centre frame) and, for
    uniform sampling, a centre frame that every stage keeps.
    """
    if pipeline not in PIPELINES:
        raise ScheduleError(f"Unknown pipeline {pipeline!r}; known: {', '.join(PIPELINES)}")
    prev_layer, prev_tokens = 0, frames
    for s in stages:
        if not 1 <= s.layer <= depth - 1:
            raise ScheduleError(
                f"Schedule layer {s.layer} is outside the model's depth: pruning happens before a block "
                f"in 1..{depth - 1} (depth {depth})"
            )
        if s.layer <= prev_layer and prev_layer != 0:
            raise ScheduleError(f"Schedule layers must strictly increase: {s.layer} after {prev_layer}")
        if s.tokens < 1:
            raise ScheduleError(f"Schedule tokens must be at least 1, got {s.tokens}")
        if s.tokens >= prev_tokens:
            what = f"the number of frames ({frames})" if prev_tokens == frames else f"the previous stage ({prev_tokens})"
            raise ScheduleError(f"Schedule tokens must be fewer than {what}: got {s.layer}:{s.tokens}")
        prev_layer, prev_tokens = s.layer, s.tokens
    if pipeline == "seq2frame":
        if frames % 2 == 0:
            raise ScheduleError(f"A seq2frame model needs an odd number of frames (a centre frame), got {frames}")
        if pruner == "tps" and stages:
            # Uniform sampling is input-independent, so whether it keeps the centre frame is known now;
            # the dynamic pruners always add the centre themselves.
            positions = list(range(frames))
            centre = frames // 2
            for s in stages:
                positions = [positions[i] for i in tps_indices(len(positions), s.tokens)]
                if centre not in positions:
                    raise ScheduleError(
                        f"seq2frame schedule stage {s.layer}:{s.tokens} drops the centre frame {centre} under "
                        f"uniform sampling (tps); choose a token count that divides the frames into an odd "
                        f"number of equal groups, e.g. {frames}/3 = {frames // 3}"
                    )
