"""Conversion across families (``h2ot_core/convert/``): temporal q/k, official sizes, clip length, the CLI round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from official_mixste import mixste_shapes, ref_mixste
from official_motionbert import motionbert_shapes
from official_ref import close, converted_model, ln, meta_state, shrink, split_qkv
from official_ref import randomise_ln as randomise

from h2ot_core.checkpoint import build_from_config
from h2ot_core.convert.mixste import convert_hot_mixste, convert_mixste, convert_tpc_mixste
from h2ot_core.convert.motionbert import convert_hot_motionbert, convert_motionbert
from h2ot_core.errors import CheckpointError


@torch.no_grad()
def test_temporal_qk_are_the_official_temporal_projections() -> None:
    mix = randomise(mixste_shapes(frames=27, dim=32, depth=3), seed=6)
    mb = randomise(motionbert_shapes(frames=27, dim=32, depth=3, dim_rep=48), seed=7)
    h = torch.randn(2, 11, 17, 32)
    seq = h.transpose(1, 2).reshape(34, 11, 32)
    for convert, sd, prefix, norm in ((convert_mixste, mix, "TTEblocks.1", "norm1"),
                                      (convert_motionbert, mb, "blocks_ts.1", "norm1_t")):
        q, k = converted_model(convert(sd)).backbone.temporal_qk(1, h)
        attn = "attn" if norm == "norm1" else "attn_t"
        q_ref, k_ref, _ = split_qkv(sd, f"{prefix}.{attn}", ln(sd, f"{prefix}.{norm}", seq, 1e-6), heads=8)
        close(q, q_ref)
        close(k, k_ref)


@pytest.mark.parametrize(("convert", "shapes", "params", "schedule"), [
    (convert_mixste, mixste_shapes(243, 512, 8), 33_783_811, ""),
    (convert_hot_mixste, mixste_shapes(243, 512, 8, hot_tokens=81), 35_000_323, "3:81"),
    (convert_tpc_mixste, mixste_shapes(243, 512, 8), 33_783_811, "7:61"),
    (convert_motionbert, motionbert_shapes(243, 256, 5, 512), 16_001_549, ""),
    (convert_hot_motionbert, motionbert_shapes(243, 256, 5, 512, hot_tokens=81), 16_347_661, "1:81"),
], ids=["mixste", "hot_mixste", "tpc_mixste", "motionbert", "hot_motionbert"])
def test_official_sizes_convert_to_the_official_configuration(convert, shapes, params, schedule) -> None:
    converted = convert(meta_state(shapes))
    with torch.device("meta"):
        model = build_from_config(converted.config)
    assert sum(p.numel() for p in model.parameters()) == params
    assert converted.config["schedule"] == schedule
    assert converted.config["model"]["num_frames"] == 243
    assert set(converted.state_dict) == set(model.state_dict())


def test_frames_are_inferred_from_the_temporal_embedding_or_imposed() -> None:
    converted = convert_hot_mixste(meta_state(mixste_shapes(81, 32, 4, hot_tokens=27)))
    assert converted.config["model"]["num_frames"] == 81 and converted.config["schedule"] == "3:27"
    assert convert_tpc_mixste(meta_state(mixste_shapes(81, 32, 8)), frames=81).config["schedule"] == "7:21"
    with pytest.raises(CheckpointError, match=r"temp_embed: checkpoint \(1, 27, 1, 32\) vs expected \(1, 81, 1, 32\)"):
        convert_motionbert(meta_state(motionbert_shapes(27, 32, 3, 48)), frames=81)
    with pytest.raises(CheckpointError, match=r"x_token: checkpoint \(1, 27, 32\) vs expected \(1, 81, 32\)"):
        convert_hot_mixste(meta_state(mixste_shapes(27, 32, 4, hot_tokens=9)), frames=81)


def test_cli_convert_then_predict_reproduces_the_official_forward(tmp_path) -> None:
    """`h2ot checkpoint convert` → `h2ot predict` on files, as a user runs them."""
    from typer.testing import CliRunner

    from orchestrator.cli import app

    sd = shrink(randomise(mixste_shapes(frames=27, dim=32, depth=3), seed=7), "Temporal_norm.weight", "Temporal_norm.bias")
    torch.save({"model_pos": sd}, tmp_path / "official.pth")  # official files wrap the state_dict
    runner = CliRunner()
    result = runner.invoke(app, ["checkpoint", "convert", "mixste", str(tmp_path / "official.pth"), str(tmp_path / "ours.pt")])
    assert result.exit_code == 0, result.output
    x = torch.randn(3, 27, 17, 2, generator=torch.Generator().manual_seed(0))  # the same input whatever ran before
    np.save(tmp_path / "in.npy", x.numpy())
    result = runner.invoke(app, ["predict", str(tmp_path / "ours.pt"), str(tmp_path / "in.npy"), str(tmp_path / "out.npy")])
    assert result.exit_code == 0, result.output
    with torch.no_grad():
        close(torch.from_numpy(np.load(tmp_path / "out.npy")), ref_mixste(sd, x))
    # the wrong architecture is refused with the mismatching keys, and nothing is written
    result = runner.invoke(app, ["checkpoint", "convert", "motionbert", str(tmp_path / "official.pth"), str(tmp_path / "bad.pt")])
    assert result.exit_code == 2 and "missing keys: blocks_st.0" in result.stderr and not (tmp_path / "bad.pt").exists()
