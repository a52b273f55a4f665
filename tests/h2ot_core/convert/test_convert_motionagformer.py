"""MotionAGFormer converters (``h2ot_core/convert/motionagformer.py``): official and HoT files give the official forward.

The reference forward (``official_motionagformer``) is written from the official code's structure with plain
tensor ops and reads the official key names, so it shares nothing with the converted modules.
"""

from __future__ import annotations

import pytest
import torch
from official_mhformer import mhformer_shapes
from official_motionagformer import agformer_shapes, ref_motionagformer
from official_ref import close, converted_model, sorted_index
from official_ref import randomise_bn as randomise

from h2ot_core.checkpoint import build_from_config
from h2ot_core.convert.mhformer import convert_mhformer
from h2ot_core.convert.motionagformer import convert_hot_motionagformer, convert_motionagformer
from h2ot_core.errors import CheckpointError


@torch.no_grad()
def test_motionagformer_conversion_reproduces_the_official_forward() -> None:
    sd = randomise(agformer_shapes(frames=27, dim=32, depth=3, dim_rep=48), seed=1)
    converted = convert_motionagformer(sd)
    assert converted.config["model"]["num_frames"] == 27 and converted.config["model"]["depth"] == 3
    x = torch.randn(2, 27, 17, 3, generator=torch.Generator().manual_seed(0))  # the same input whatever ran before
    ours = converted_model(converted)(x).pose3d
    close(ours, ref_motionagformer(sd, x, heads=8, neighbours=2))


@torch.no_grad()
def test_hot_motionagformer_conversion_reproduces_the_official_forward_for_the_same_frames() -> None:
    # Depth 9 so the official pruning point (before block 7) exists; the selection is replayed on both sides.
    sd = randomise(agformer_shapes(frames=27, dim=16, depth=9, dim_rep=16, hot=(7, 9)), seed=3)
    converted = convert_hot_motionagformer(sd)
    assert (converted.config["pruner"], converted.config["recoverer"], converted.config["schedule"]) == ("tpc", "tra", "7:9")
    # The 9-entry frame norms of blocks >= 7 are padded to 27 with the identity.
    padded = converted.state_dict["backbone.layers.8.graph_temporal.mixer.batch_norm.running_var"]
    assert torch.equal(padded[:9], sd["layers.8.graph_temporal.mixer.batch_norm.running_var"])
    assert torch.equal(padded[9:], torch.ones(18))
    x = torch.randn(2, 27, 17, 3, generator=torch.Generator().manual_seed(0))  # the same input whatever ran before
    index = sorted_index(2, 27, 9, seed=4)
    out = converted_model(converted)(x, replay=(index,))
    assert out.pose3d.shape == (2, 27, 17, 3)
    expected = ref_motionagformer(sd, x, heads=4, neighbours=4, prune=(7, index))
    close(out.pose3d, expected)


def test_official_b_sizes_convert_to_the_official_parameter_count() -> None:
    with torch.device("meta"):
        sd = {k: torch.empty(s) for k, s in agformer_shapes(frames=243, dim=128, depth=16, dim_rep=512).items()}
        hot = {k: torch.empty(s) for k, s in agformer_shapes(243, 128, 16, 512, hot=(7, 81)).items()}
        model = build_from_config(convert_motionagformer(sd).config)
        converted = convert_hot_motionagformer(hot)
    assert sum(p.numel() for p in model.parameters()) == 11_723_811
    assert converted.config["schedule"] == "7:81"
    assert converted.state_dict["stage_pos_embed.0"].shape == (1, 81, 1, 128)
    assert converted.state_dict["recoverer.queries"].shape == (1, 243, 128)


def test_wrong_checkpoints_are_refused_naming_the_keys() -> None:
    agf = randomise(agformer_shapes(frames=27, dim=32, depth=3, dim_rep=48), seed=8)
    mhf = randomise(mhformer_shapes(frames=27, dim=32, hidden=64, mhg_depth=2), seed=9)
    with pytest.raises(CheckpointError, match=r"not an official 'mhformer'.*missing keys: .*Transformer_encoder_1"):
        convert_mhformer(agf)
    with pytest.raises(CheckpointError, match=r"'motionagformer'.*unexpected keys: .*Transformer_encoder_1"):
        convert_motionagformer(mhf)
    broken = dict(agf)
    del broken["layers.1.fusion.bias"]
    broken["layers.0.mixer.extra"] = torch.zeros(1)
    broken["layers.2.att_temporal.mixer.qkv.weight"] = torch.zeros(96, 31)
    with pytest.raises(CheckpointError) as info:
        convert_motionagformer(broken)
    message = str(info.value)
    assert "missing keys: layers.1.fusion.bias" in message
    assert "unexpected keys: layers.0.mixer.extra" in message
    assert "layers.2.att_temporal.mixer.qkv.weight: checkpoint (96, 31) vs expected (96, 32)" in message
    hot = randomise(agformer_shapes(frames=27, dim=16, depth=9, dim_rep=16, hot=(7, 9)), seed=10)
    # Told the wrong clip length: every frame-sized key is reported (the first 12, then the count).
    with pytest.raises(CheckpointError, match=r"batch_norm.bias: checkpoint \(27,\) vs expected \(81,\).*29 in all"):
        convert_hot_motionagformer(hot, frames=81)
