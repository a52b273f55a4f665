"""The per-epoch training checkpoint: enough state to resume bit-for-bit where a run stopped.

One file, ``<dir>/state.pt``, rewritten atomically (temp file + rename) after every epoch: a crash mid-write
leaves the previous epoch's file intact. Plain containers only, so it loads with ``weights_only=True``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor

from h2ot_core.checkpoint import atomic_save, safe_load
from h2ot_core.errors import CheckpointError

STATE_FILE = "state.pt"
FORMAT = "h2ot-train-state"
FORMAT_VERSION = 1


@dataclass
class TrainState:
    """Attributes:
    trial_key: the trial this state belongs to (resuming another trial's state is refused).
    epoch: epochs completed.
    model / optimizer / scheduler: ``state_dict`` s.
    torch_rng: the global CPU generator's state (dropout, drop-path, pruner tie-break noise).
    shuffle_rng: the state of the generator that orders and flips training windows.
    history: per-epoch report dicts.
    scaler: the fp16 loss scaler's ``state_dict`` (scale and growth tracker; empty when not fp16), so a
        resumed fp16 run does not restart its scale from 2**16 and skip steps finding it again.
    cuda_rng: the generator state of each visible CUDA device (empty on a CPU): dropout on a GPU draws there.
    selected: the epoch the result reports so far: ``{"epoch", "metrics", "train_loss", "model"}``; ``model``
        holds that epoch's weights under ``best_on_test`` and is ``None`` under ``last_epoch`` (they are
        the live ones).
    """

    trial_key: str
    epoch: int
    model: dict[str, Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    torch_rng: Tensor
    shuffle_rng: Tensor
    history: list[dict[str, Any]] = field(default_factory=list)
    selected: dict[str, Any] | None = None
    scaler: dict[str, Any] = field(default_factory=dict)
    cuda_rng: list[Tensor] = field(default_factory=list)


def save_state(directory: str | Path, state: TrainState) -> Path:
    """Write ``state`` to ``directory/state.pt`` atomically; returns the file's path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / STATE_FILE
    payload = {"format": FORMAT, "version": FORMAT_VERSION, **asdict(state)}
    return atomic_save(payload, path)


def load_state(path: str | Path) -> TrainState:
    """Read a state saved by :func:`save_state`; ``path`` is the file or its directory."""
    path = Path(path)
    if path.is_dir():
        path = path / STATE_FILE
    if not path.is_file():
        raise CheckpointError(f"{path}: no training checkpoint to resume from")
    payload = safe_load(path, "training checkpoint")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an H2OT Lab training checkpoint (field 'format' is "
                              f"{payload.get('format') if isinstance(payload, dict) else None!r})")
    if payload.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: training checkpoint version {payload.get('version')!r}, "
                              f"this H2OT Lab reads version {FORMAT_VERSION}")
    payload.pop("format")
    payload.pop("version")
    try:
        return TrainState(**payload)
    except TypeError as exc:
        raise CheckpointError(f"{path}: training checkpoint fields do not match ({exc})") from None
