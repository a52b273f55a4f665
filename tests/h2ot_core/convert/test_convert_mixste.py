"""MixSTE converters (``h2ot_core/convert/mixste.py``): official MixSTE, HoT- and TPC-MixSTE files give the official forward.

The reference forward (``official_mixste``) follows the official files' structure and reads the official key
names, so it shares nothing with the converted modules.
"""

from __future__ import annotations

import pytest
import torch
from official_mixste import mixste_shapes, ref_mixste
from official_motionbert import motionbert_shapes
from official_ref import close, converted_model, meta_state, shrink
from official_ref import randomise_ln as randomise

from h2ot_core.convert.mixste import convert_hot_mixste, convert_mixste, convert_tpc_mixste
from h2ot_core.convert.motionbert import convert_hot_motionbert
from h2ot_core.errors import CheckpointError


@torch.no_grad()
def test_mixste_conversion_reproduces_the_official_forward() -> None:
    sd = shrink(randomise(mixste_shapes(frames=27, dim=32, depth=3), seed=1), "Temporal_norm.weight", "Temporal_norm.bias")
    converted = convert_mixste(sd)
    assert converted.config["model"]["num_frames"] == 27 and converted.config["model"]["depth"] == 3
    assert (converted.config["pruner"], converted.config["recoverer"], converted.config["schedule"]) == ("none", "none", "")
    x = torch.randn(2, 27, 17, 2, generator=torch.Generator().manual_seed(0))  # the same input whatever ran before
    model = converted_model(converted)
    expected = ref_mixste(sd, x)
    close(model.backbone(x), expected)
    close(model(x).pose3d, expected)


@torch.no_grad()
def test_hot_mixste_conversion_reproduces_the_official_forward_for_the_frames_our_model_kept() -> None:
    # Depth 4 so the official pruning point (before pair 3) exists.
    sd = randomise(mixste_shapes(frames=27, dim=32, depth=4, hot_tokens=9), seed=2)
    converted = convert_hot_mixste(sd)
    assert (converted.config["pruner"], converted.config["recoverer"], converted.config["schedule"]) == ("tpc", "tra", "3:9")
    assert torch.equal(converted.state_dict["stage_pos_embed.0"][:, :, 0], sd["pos_embed_token"])
    x = torch.randn(2, 27, 17, 2, generator=torch.Generator().manual_seed(0))  # the same input whatever ran before
    out = converted_model(converted)(x)
    assert out.pose3d.shape == (2, 27, 17, 3) and out.kept_index.shape == (2, 9)
    close(out.pose3d, ref_mixste(sd, x, prune=(3, out.kept_index)))


@torch.no_grad()
def test_tpc_mixste_conversion_reads_out_the_centre_frame_of_the_official_forward() -> None:
    sd = randomise(mixste_shapes(frames=27, dim=16, depth=8), seed=3)
    converted = convert_tpc_mixste(sd)
    assert converted.config["pipeline"] == "seq2frame"
    assert (converted.config["pruner"], converted.config["recoverer"], converted.config["schedule"]) == ("tpc", "none", "7:7")
    x = torch.randn(2, 27, 17, 2, generator=torch.Generator().manual_seed(0))  # the same input whatever ran before
    out = converted_model(converted)(x)
    assert out.pose3d.shape == (2, 1, 17, 3)
    assert (out.kept_index == 13).any(dim=1).all()
    kept = ref_mixste(sd, x, prune=(7, out.kept_index))  # [B, 7, J, 3]
    centre = (out.kept_index == 13).float().argmax(dim=1)
    close(out.pose3d[:, 0], kept[torch.arange(2), centre])


def test_wrong_checkpoints_are_refused_naming_the_keys() -> None:
    good = meta_state(mixste_shapes(27, 32, 4, hot_tokens=9))
    missing = {k: v for k, v in good.items() if k != "TTEblocks.2.attn.qkv.weight"}
    with pytest.raises(CheckpointError, match=r"'hot_mixste'.*missing keys: TTEblocks\.2\.attn\.qkv\.weight"):
        convert_hot_mixste(missing)
    reshaped = {**good, "head.1.weight": torch.empty(4, 32, device="meta")}
    with pytest.raises(CheckpointError, match=r"shape mismatches: head\.1\.weight: checkpoint \(4, 32\) vs expected \(3, 32\)"):
        convert_hot_mixste(reshaped)
    # A HoT checkpoint is not a plain MixSTE one: its TRA keys are unexpected there.
    with pytest.raises(CheckpointError, match=r"'mixste'.*unexpected keys: cross_attention\.linear_k\.bias"):
        convert_mixste(good)
    # And a MotionBERT checkpoint is not a MixSTE one at all.
    with pytest.raises(CheckpointError, match=r"missing keys: .*STEblocks\.0\.attn\.proj\.bias"):
        convert_mixste(meta_state(motionbert_shapes(27, 32, 3, 48)))
    with pytest.raises(CheckpointError, match=r"'hot_motionbert'.*missing keys: cross_attention\.linear_k\.bias"):
        convert_hot_motionbert(meta_state(motionbert_shapes(27, 32, 3, 48)))
