"""MixSTE backbone (``h2ot_core/models/mixste.py``): stochastic depth across its spatial and temporal blocks."""

from __future__ import annotations

import pytest
from tiny import tiny


def test_drop_path_ramps_to_the_configured_rate():
    model = tiny("mixste", drop_path_rate=0.2)
    rates = [blk.drop_path.p for blk in model.spatial_blocks]
    assert rates[0] == 0.0 and rates[-1] == pytest.approx(0.2)
    assert rates == sorted(rates)
    assert [blk.drop_path.p for blk in model.temporal_blocks] == rates
