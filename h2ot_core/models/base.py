"""The backbone contract: every video pose transformer is ``embed → blocks → head``.

The :class:`~h2ot_core.hourglass.HourglassModel` drives these pieces and prunes frame tokens
between blocks, so a backbone never knows about pruning: its blocks must accept any number of
frames ``f <= num_frames`` (read it from the input's shape).

Shapes: ``B`` batch, ``F`` input frames, ``f`` frames still alive, ``J`` joints, ``C`` channels.
"""

from __future__ import annotations

from typing import cast

from torch import Tensor, nn


class Backbone(nn.Module):
    """Base class of the lifters in :data:`h2ot_core.names.BACKBONES`.

    Subclasses set ``num_frames``, ``num_joints``, ``in_chans``, ``dim``, ``depth`` (number of
    prunable block positions) and implement the four stage methods. Their size arguments have no
    defaults: the official size is the backbone's :class:`~h2ot_core.names.BackboneInfo` ``defaults``,
    merged under the caller's overrides by :func:`h2ot_core.factory.create_model`. Whether the model runs
    seq2seq or seq2frame is the hourglass's (:attr:`h2ot_core.hourglass.HourglassModel.pipeline`).
    """

    #: heads and q/k/v bias of the TRA cross-attention that recovers this backbone's tokens
    tra_heads: int = 8
    tra_qkv_bias: bool = True

    num_frames: int
    num_joints: int
    in_chans: int
    dim: int
    depth: int

    def embed(self, x: Tensor) -> Tensor:
        """``[B, F, J, C_in]`` 2D keypoints → ``[B, F, J', C]`` tokens (positional embeddings included)."""
        raise NotImplementedError

    def forward_block(self, i: int, x: Tensor) -> Tensor:
        """Run block position ``i`` (0-based) on ``[B, f, J', C]`` tokens; same shape out."""
        raise NotImplementedError

    def forward_norm(self, x: Tensor) -> Tensor:
        """Final normalisation after the last block, before recovery (TRA's input)."""
        return x

    def head(self, x: Tensor) -> Tensor:
        """``[B, f, J', C]`` tokens → ``[B, f, J, 3]`` 3D poses (metres, root-relative)."""
        raise NotImplementedError

    def frame_features(self, x: Tensor) -> Tensor:
        """One feature vector per frame for clustering: ``[B, f, J', C]`` → ``[B, f, D]``."""
        return x.mean(dim=2)

    def temporal_qk(self, i: int, x: Tensor) -> tuple[Tensor, Tensor] | None:
        """Queries and keys of block ``i``'s temporal attention on ``x``: each ``[B*J', H, f, d]``.

        Used by attention-score pruning (TPA); ``None`` when the block has no temporal attention.
        """
        return None

    def compile_units(self) -> list[nn.Module]:
        """The modules ``--compile`` hands to ``torch.compile`` (:func:`h2ot_core.device.compile_blocks`): the
        items of the top-level ``ModuleList``s. A backbone with a block outside them adds it."""
        return [unit for child in self.children() if isinstance(child, nn.ModuleList) for unit in child]

    def forward(self, x: Tensor) -> Tensor:
        """Unpruned pass: ``[B, F, J, C_in]`` → ``[B, F, J, 3]``."""
        h = self.embed(x)
        for i in range(self.depth):
            h = self.forward_block(i, h)
        return self.head(self.forward_norm(h))


def backbone_of(model: nn.Module) -> Backbone:
    """The backbone of a model: an :class:`~h2ot_core.hourglass.HourglassModel`'s ``backbone``, else ``model``."""
    return cast(Backbone, getattr(model, "backbone", model))
