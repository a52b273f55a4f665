"""Native checkpoints: weights + the model configuration + a format version, in one file.

Saved with ``torch.save`` as plain containers and loaded with ``weights_only=True`` (no pickled code).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from h2ot_core.errors import CheckpointError
from h2ot_core.factory import create_model
from h2ot_core.hourglass import HourglassModel

FORMAT = "h2ot-native"
FORMAT_VERSION = 1

#: where torch's weights-only refusal states its cause, after a paragraph of advice
_WEIGHTS_ONLY_CAUSE = "WeightsUnpickler error:"


def atomic_save(payload: Any, path: Path) -> Path:
    """``torch.save`` to a temporary file beside ``path``, then rename: a crash never leaves half a file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save(payload, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def safe_load(path: Path, what: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU; a file torch cannot read is a one-line CheckpointError.

    ``what`` names the expected kind of file in the message. Of torch's multi-line refusal we keep the cause
    (and drop its advice to retry with ``weights_only=False``, which would run the file's pickled code).
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for foreign or corrupt files
        text = str(exc)
        cause = text.partition(_WEIGHTS_ONLY_CAUSE)[2] or text
        line = next((ln.strip() for ln in cause.splitlines() if ln.strip()), "")
        raise CheckpointError(f"{path}: not a readable {what} ({type(exc).__name__}: {line})") from None


def save_native(path: str | Path, model: HourglassModel, config: dict[str, Any], **extra: Any) -> Path:
    """Write ``{format, version, config, state_dict, extra}`` atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format": FORMAT, "version": FORMAT_VERSION, "config": config,
               "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, "extra": extra}
    return atomic_save(payload, path)


def read_native(path: str | Path) -> dict[str, Any]:
    """The raw payload of a native checkpoint, validated."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    payload = safe_load(path, "checkpoint")
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not an H2OT Lab native checkpoint (field 'format' is "
            f"{payload.get('format') if isinstance(payload, dict) else type(payload).__name__!r}); "
            f"official checkpoints must first go through `h2ot checkpoint convert`"
        )
    if payload.get("version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {payload.get('version')!r}, "
                              f"this H2OT Lab reads version {FORMAT_VERSION}")
    return payload


def build_from_config(config: dict[str, Any]) -> HourglassModel:
    """The model a stored configuration describes (a pipeline stored among the model settings is read too)."""
    model = dict(config.get("model", {}))
    pipeline = model.pop("pipeline", None)
    pipeline = config.get("pipeline") or pipeline
    return create_model(config["backbone"], config.get("pruner", "none"), config.get("recoverer", "none"),
                        config.get("schedule", ""), pipeline=pipeline, **model)


def load_state_strict(model: HourglassModel, state: dict[str, torch.Tensor], source: str) -> None:
    """Load every key or refuse, listing missing, unexpected and mis-shaped keys."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(f"{k}: {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                    for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or shapes:
        parts = [f"{t}: {', '.join(v[:10])}{' ...' if len(v) > 10 else ''}"
                 for t, v in (("missing", missing), ("unexpected", unexpected), ("shape mismatch", shapes)) if v]
        raise CheckpointError(f"{source}: checkpoint does not match the model; " + "; ".join(parts))
    model.load_state_dict(state, strict=True)


def load_native(path: str | Path) -> tuple[HourglassModel, dict[str, Any]]:
    """Rebuild the model a native checkpoint describes and load its weights (strictly)."""
    payload = read_native(path)
    model = build_from_config(payload["config"])
    load_state_strict(model, payload["state_dict"], str(path))
    model.eval()
    return model, payload["config"]
