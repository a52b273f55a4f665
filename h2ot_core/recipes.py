"""The official recipe and protocol of every backbone, each ingredient with its public source.

A trial with ``train.recipe: official`` trains with :func:`official_settings` (the backbone's
``BackboneInfo.recipe`` with :attr:`OfficialRecipe.overrides` applied); a paper grid also sets
``evaluate.protocol`` and ``selection`` to :attr:`OfficialRecipe.protocol` / ``.selection``.
``h2ot recipe show BACKBONE`` prints :func:`ingredients`; the README's recipe table is
:func:`markdown_table` (``make readme``; a test checks the README is current).

MixSTE and MHFormer follow HoT's training scripts; MotionBERT and MotionAGFormer follow their own upstream
repositories (HoT ships no training script for them and says it keeps their recipes). The facts were read
from the public code named in each source; none of it is copied. Torch-free.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from h2ot_core.engine.settings import HOT_LARGE_DECAY_EPOCH, TrainSettings
from h2ot_core.errors import ConfigError
from h2ot_core.names import BACKBONES, backbone_info, dataset_info
from h2ot_core.registry import unknown_message

HOT = "NationalGAILab/HoT"
MOTIONBERT = "Walter0807/MotionBERT"
MOTIONAGFORMER = "TaatiTeam/MotionAGFormer"


@dataclass(frozen=True)
class OfficialRecipe:
    """What ``recipe: official`` changes for one backbone, and where each ingredient comes from.

    Attributes:
        overrides: :class:`TrainSettings` fields set over ``BackboneInfo.recipe`` (the rest of the official
            recipe already is the backbone's recipe).
        selection: the official checkpoint selection (``best_on_test``: the scripts keep the best test epoch).
        protocol: the official evaluation protocol (``official``: padded frames are scored too).
        sources: ``{ingredient: "repository: file (what)"}`` for every ingredient of :data:`INGREDIENTS`.
        notes: ``{ingredient: text}`` appended to a value (a choice, or where ours differs).
    """

    overrides: Mapping[str, Any]
    selection: str
    protocol: str
    sources: Mapping[str, str]
    notes: Mapping[str, str]


def _hot_sources(script: str) -> dict[str, str]:
    args = f"{HOT}: common/arguments.py"
    # common/load_data_hm36.py takes common/generator.py at stride 1 (MHFormer), else generator_stride.py
    generator = "common/generator_stride.py" if "mixste" in script else "common/generator.py"
    return {
        "loss": f"{HOT}: {script} (train), common/loss.py",
        "joint weights": f"{HOT}: main_mixste.py (w_mpjpe)" if "mixste" in script else f"{HOT}: {script} (mpjpe)",
        "optimizer": f"{HOT}: {script} ({'optim.AdamW' if 'mixste' in script else 'optim.Adam, amsgrad'})",
        "lr": f"{args} (--lr); README.md (training commands)",
        "weight decay": f"{HOT}: {script} "
                        + ("(weight_decay=0.1)" if "mixste" in script else "(Adam without weight_decay: 0)"),
        "lr schedule": f"{HOT}: {script} (epoch % lr_decay_epoch); {args} (--lr_decay, --lr_decay_large, "
                       f"--lr_decay_epoch)",
        "epochs": f"{args} (--nepoch); README.md",
        "batch": f"{args} (--batch_size); README.md",
        "epoch": f"{HOT}: {generator} (ChunkedGenerator, augment: every pair listed twice), "
                 f"common/load_data_hm36.py",
        "augmentation": f"{HOT}: {generator} (flipped pairs); {script} (test: flipped pass averaged)",
        "clip stride and padding": f"{args} (--stride, --pad); {generator} (edge padding)",
        "loss frames": f"{HOT}: {script} (loss on the whole output window)"
                       + ("" if "mixste" in script else ", model/mhformer/mhformer.py (outputs every frame)"),
        "selection": f"{HOT}: {script} (saves when p1 < previous_best)",
        "protocol": f"{HOT}: {script} (test), common/utils.py (test_calculation, mpjpe_cal, p_mpjpe)",
    }


def _upstream_sources(repo: str, config: str, dataset_file: str, clips: str, best: str, decay: str
                      ) -> dict[str, str]:
    return {
        "loss": f"{repo}: {config} (lambda_3d_velocity, lambda_scale), train.py",
        "joint weights": f"{repo}: train.py (loss_mpjpe: no joint weights)",
        "optimizer": f"{repo}: train.py (optim.AdamW)",
        "lr": f"{repo}: {config} (learning_rate)",
        "weight decay": f"{repo}: {config} (weight_decay)",
        "lr schedule": f"{repo}: {config} (lr_decay), {decay}",
        "epochs": f"{repo}: {config} (epochs)",
        "batch": f"{repo}: {config} (batch_size)",
        "epoch": f"{repo}: {dataset_file} (one item per clip)",
        "augmentation": f"{repo}: {dataset_file} (flip with p 0.5), train.py (test: flipped pass averaged)",
        "clip stride and padding": f"{repo}: {clips}",
        "loss frames": f"{repo}: train.py (loss on every frame of the clip)",
        "selection": f"{repo}: train.py ({best}: lowest test MPJPE)",
        "protocol": f"{HOT}: common/utils.py (the H2OT tables score every backbone as HoT's test does)",
    }


_HOT_OVERRIDES = {"epoch_clips": "mirrored_copies", "loss_frames": "padded"}
_UPSTREAM_NOTES = {
    "clip stride and padding": "upstream resamples a short last clip to F frames; ours edge-pads it",
    "protocol": "upstream MotionBERT-style evaluation differs (SH detections, 3 S9 clips dropped); the "
                "paper grids score all backbones with HoT's protocol",
}

#: ``backbone -> OfficialRecipe``; every registered backbone has one (a test checks it)
OFFICIAL: dict[str, OfficialRecipe] = {
    "mixste": OfficialRecipe(
        overrides={**_HOT_OVERRIDES, "lr_rule": "hot"}, selection="best_on_test", protocol="official",
        sources=_hot_sources("main_mixste.py"), notes={}),
    "mhformer": OfficialRecipe(
        overrides={"epoch_clips": "mirrored_copies"}, selection="best_on_test", protocol="official",
        sources=_hot_sources("main_mhformer.py"),
        notes={"loss frames": "not reproduced: HoT's MHFormer outputs all 351 frames and its MPJPE loss covers "
                              "them all, padding included (TPC-MHFormer: its 117 kept frames)"}),
    "motionbert": OfficialRecipe(
        overrides={"loss_frames": "padded"}, selection="best_on_test", protocol="official",
        sources=_upstream_sources(MOTIONBERT, "configs/pose3d/MB_train_h36m.yaml",
                                  "lib/data/dataset_motion_3d.py",
                                  "configs/pose3d/MB_train_h36m.yaml (clip_len 243, data_stride 81), "
                                  "lib/data/datareader_h36m.py (clips)",
                                  "best_epoch.bin", "train.py (lr decay after each epoch)"),
        notes=dict(_UPSTREAM_NOTES)),
    "motionagformer": OfficialRecipe(
        overrides={"loss_frames": "padded"}, selection="best_on_test", protocol="official",
        sources={**_upstream_sources(MOTIONAGFORMER, "configs/h36m/MotionAGFormer-base.yaml",
                                     "data/reader/motion_dataset.py",
                                     "configs/h36m/MotionAGFormer-base.yaml (n_frames 243), data/preprocess/h36m.py "
                                     "(train stride n_frames / 3 = 81)",
                                     "best_epoch.pth.tr", "train.py, utils/learning.py (decay_lr_exponentially)"),
                 "lr": f"MotionAGFormer paper (WACV 2024): 5e-4; {MOTIONAGFORMER} issue #1: the released "
                       f"configs/h36m/MotionAGFormer-base.yaml (2e-4) is not what the paper used"},
        notes={**_UPSTREAM_NOTES, "lr": "taken from the paper, not the released config's 2e-4 (upstream issue #1)"}),
}


def official_recipe(backbone: str) -> OfficialRecipe:
    """The official recipe of ``backbone`` (did-you-mean error for an unknown name)."""
    if backbone not in OFFICIAL:
        raise ConfigError(unknown_message("backbone", backbone, sorted(OFFICIAL)))
    return OFFICIAL[backbone]


def official_settings(backbone: str) -> TrainSettings:
    """The training settings of ``recipe: official`` for ``backbone``, before a trial's own overrides."""
    return replace(backbone_info(backbone).recipe, recipe="official", **official_recipe(backbone).overrides)


# --- the ingredients, as printed ----------------------------------------------------------------------------


def _loss(s: TrainSettings, backbone: str) -> str:
    return " + ".join(f"{w:g}·{term}" for term, w in s.loss.items())


def _joint_weights(s: TrainSettings, backbone: str) -> str:
    if not {"wmpjpe", "tc"} & set(s.loss):
        return "none (uniform)"
    return "[" + ", ".join(f"{w:g}" for w in dataset_info("h36m").joint_weights or ()) + "] (H36M order)"


def _schedule(s: TrainSettings, backbone: str) -> str:
    if s.lr_rule == "hot":
        return f"×{s.lr_decay:g} after each epoch, ×0.5 instead after every {HOT_LARGE_DECAY_EPOCH}th"
    if s.lr_rule == "mhformer":
        return f"×{s.lr_decay:g} after each epoch, ×0.5 instead after every 5th"
    return f"×{s.lr_decay:g} after each epoch"


def _epoch(s: TrainSettings, backbone: str) -> str:
    if s.epoch_clips == "mirrored_copies":
        return "every training clip twice: as is and mirrored (2× the clips and steps)"
    return "every training clip once"


def _augmentation(s: TrainSettings, backbone: str) -> str:
    train = "mirrored copies in the epoch" if s.epoch_clips == "mirrored_copies" else "mirror each clip with p 0.5"
    return f"train: {train}; test: average with the mirrored pass"


def _strides(s: TrainSettings, backbone: str) -> str:
    info = backbone_info(backbone)
    frames = info.defaults["num_frames"]
    train, test = s.strides(frames, info.pipeline)
    kind = "one window per frame, centred" if info.pipeline == "seq2frame" else "windows tiling each sequence"
    return f"{frames} frames; train stride {train}, test stride {test}; {kind}, edge-padded at the ends"


def _loss_frames(s: TrainSettings, backbone: str) -> str:
    if backbone_info(backbone).pipeline == "seq2frame":
        return "the centre frame (our seq2frame output)"
    return "every frame, edge padding included" if s.loss_frames == "padded" else "real frames only"


def _selection(s: TrainSettings, backbone: str) -> str:
    return {"best_on_test": "best_on_test: the epoch with the lowest test MPJPE (official practice)",
            "best_on_val": "best_on_val", "last_epoch": "last_epoch"}[official_recipe(backbone).selection]


def _protocol(s: TrainSettings, backbone: str) -> str:
    if official_recipe(backbone).protocol == "official":
        return "official: P1/P2 averaged over the padded frames too; P2 per clip (not per batch)"
    return "real_frames: padded frames masked"


#: ``ingredient -> render(settings, backbone)``, in the order they are printed
INGREDIENTS: dict[str, Callable[[TrainSettings, str], str]] = {
    "loss": _loss,
    "joint weights": _joint_weights,
    "optimizer": lambda s, b: s.optimizer,
    "lr": lambda s, b: f"{s.lr:g}",
    "weight decay": lambda s, b: f"{s.weight_decay:g}",
    "lr schedule": _schedule,
    "epochs": lambda s, b: str(s.epochs),
    "batch": lambda s, b: f"{s.batch_size} clips",
    "epoch": _epoch,
    "augmentation": _augmentation,
    "clip stride and padding": _strides,
    "loss frames": _loss_frames,
    "selection": _selection,
    "protocol": _protocol,
}


def ingredients(backbone: str) -> list[dict[str, str]]:
    """``[{ingredient, value, source}]`` of ``backbone``'s official recipe, in :data:`INGREDIENTS` order."""
    recipe, settings = official_recipe(backbone), official_settings(backbone)
    rows = []
    for name, render in INGREDIENTS.items():
        value = render(settings, backbone)
        if name in recipe.notes:
            value = f"{value}; {recipe.notes[name]}"
        rows.append({"ingredient": name, "value": value, "source": recipe.sources[name]})
    return rows


def markdown_table() -> str:
    """The README's recipe table: one row per ingredient and backbone, with its public source."""
    lines = ["| backbone | ingredient | official value | source (repository: file) |", "|---|---|---|---|"]
    for backbone in BACKBONES.names():
        for row in ingredients(backbone):
            cells = (row["value"].replace("|", "\\|"), row["source"].replace("|", "\\|"))
            lines.append(f"| {backbone} | {row['ingredient']} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)
