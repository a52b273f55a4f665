"""The ``PruneContext`` the pruner tests hand to ``select``: zero 2D inputs unless given, joint-mean frame features."""

from __future__ import annotations

import torch

from h2ot_core.pruning.base import PruneContext


def ctx(tokens, inputs=None, centre=None):
    b, f = tokens.shape[:2]
    return PruneContext(inputs=inputs if inputs is not None else torch.zeros(b, f, 17, 2),
                        frame_features=tokens.mean(dim=2), centre=centre)
