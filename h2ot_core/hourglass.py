"""HourglassModel: a backbone composed with a pruning schedule and a recoverer (HoT / H2OT).

Blocks before the first stage see all ``F`` frames; at each scheduled layer the pruner keeps fewer
frame tokens (one stage = HoT's hourglass, several = H2OT's pyramid); the recoverer restores ``F``
frames before (TRA) or after (TRI) the regression head. ``pruner = none`` with an empty schedule runs
the very same code, so baselines and ablations are comparable.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from h2ot_core.contracts import Pipeline
from h2ot_core.models.base import Backbone
from h2ot_core.pruning.base import PruneContext, TokenPruner
from h2ot_core.recovering.base import TokenRecoverer
from h2ot_core.schedule import Stage


@dataclass
class PoseOutput:
    """Attributes:
    pose3d: ``[B, F, J, 3]`` (seq2frame: ``[B, 1, J, 3]``) root-relative 3D joints, metres.
    kept_index: ``[B, f]`` frame numbers alive after the last stage, sorted ascending.
    stage_positions: per stage, ``[B, f_i]`` positions chosen on that stage's input axis; pass them
        back as ``forward(..., replay=...)`` to repeat the selection.
    """

    pose3d: Tensor
    kept_index: Tensor
    stage_positions: tuple[Tensor, ...] = ()


class HourglassModel(nn.Module):
    """Args:
    backbone: the lifter, split into embed → blocks → head.
    pruner: token pruning module applied at every stage.
    recoverer: token recovery module (``tokens`` stage before the head, ``poses`` stage after it).
    stages: the schedule, ``(layer, tokens)`` with increasing layers and decreasing tokens.
    pipeline: ``seq2seq`` or ``seq2frame`` (the centre frame is kept at every stage and read out); the
        model's pipeline is this one, whatever the backbone was published as.
    stage_pos_embed: add a learnable, zero-initialised ``[1, f, 1, C]`` embedding to the tokens kept
        at each stage (HoT's seq2seq variants do; its seq2frame ones do not).
    """

    def __init__(
        self,
        backbone: Backbone,
        pruner: TokenPruner,
        recoverer: TokenRecoverer,
        stages: tuple[Stage, ...] = (),
        *,
        pipeline: Pipeline = "seq2seq",
        stage_pos_embed: bool = True,
    ):
        super().__init__()
        self.backbone = backbone
        self.pruner = pruner
        self.recoverer = recoverer
        self.stages = tuple(stages)
        self.pipeline = pipeline
        self._stage_at = {s.layer: i for i, s in enumerate(self.stages)}
        self.stage_pos_embed = nn.ParameterList(
            [nn.Parameter(torch.zeros(1, s.tokens, 1, backbone.dim)) for s in self.stages]
            if stage_pos_embed
            else []
        )

    @property
    def num_frames(self) -> int:
        return self.backbone.num_frames

    def forward(self, x: Tensor, replay: tuple[Tensor, ...] | None = None) -> PoseOutput:
        """``x [B, F, J, C_in]`` normalised 2D keypoints → :class:`PoseOutput`.

        ``replay`` (a previous output's ``stage_positions``) repeats that selection instead of running
        the pruner — so the flipped test-time pass of a seq2frame model keeps the unflipped frames.
        """
        bb = self.backbone
        b, f_in = x.shape[:2]
        centre_frame = f_in // 2 if self.pipeline == "seq2frame" else None
        h = bb.embed(x)
        frames = torch.arange(f_in, device=x.device).expand(b, f_in)
        inputs = x
        chosen: list[Tensor] = []
        for i in range(bb.depth):
            stage = self._stage_at.get(i)
            if stage is not None:
                keep = self.stages[stage].tokens
                if replay is not None:
                    pos = replay[stage]
                else:
                    pos = self.pruner.select(h, keep, self._context(h, inputs, frames, centre_frame, i))
                h = h.gather(1, pos[:, :, None, None].expand(-1, -1, *h.shape[2:]))
                frames = frames.gather(1, pos)
                inputs = inputs.gather(1, pos[:, :, None, None].expand(-1, -1, *inputs.shape[2:]))
                if len(self.stage_pos_embed):
                    h = h + self.stage_pos_embed[stage]
                chosen.append(pos)
            h = bb.forward_block(i, h)
        h = bb.forward_norm(h)
        if self.recoverer.stage == "tokens":
            y = bb.head(self.recoverer(h, frames, f_in))
        else:
            y = self.recoverer(bb.head(h), frames, f_in)
        if centre_frame is not None:
            # seq2frame: the centre is kept at every stage; read its prediction out.
            where = (frames == centre_frame).float().argmax(dim=1) if y.shape[1] != f_in else None
            if where is None:
                y = y[:, centre_frame : centre_frame + 1]
            else:
                y = y.gather(1, where[:, None, None, None].expand(-1, 1, *y.shape[2:]))
        return PoseOutput(y, frames, tuple(chosen))

    def _context(self, h: Tensor, inputs: Tensor, frames: Tensor, centre_frame: int | None, i: int) -> PruneContext:
        centre = None
        if centre_frame is not None:
            centre = (frames == centre_frame).float().argmax(dim=1)
        qk = self.backbone.temporal_qk(i - 1, h) if self.pruner.needs_qk else None
        return PruneContext(inputs=inputs, frame_features=self.backbone.frame_features(h), centre=centre, qk=qk)
