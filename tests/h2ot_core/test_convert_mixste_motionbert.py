"""Official MixSTE / MotionBERT checkpoints convert to models that compute the official forward pass.

The reference forwards below follow the official files' structure (``(b f) n c`` token layout, MotionBERT's
reshape-based temporal attention, explicit softmax and LayerNorm) and read the official key names, so
they share nothing with the converted modules.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from official_ref import (
    Shapes,
    State,
    block_shapes,
    close,
    converted_model,
    lin,
    linear_shapes,
    ln,
    mlp,
    norm_shapes,
    ref_self_attention,
    ref_tra,
    softmax_attention,
    split_qkv,
    tra_shapes,
)
from torch import Tensor

from h2ot_core.checkpoint import build_from_config, load_native
from h2ot_core.convert.mixste import convert_hot_mixste, convert_mixste, convert_tpc_mixste
from h2ot_core.convert.motionbert import convert_hot_motionbert, convert_motionbert
from h2ot_core.convert.service import convert_official
from h2ot_core.errors import CheckpointError

# ---------------------------------------------------------------- official key names and shapes

def mixste_shapes(frames: int, dim: int, depth: int, hot_tokens: int | None = None) -> Shapes:
    """Keys of HoT's ``model/mixste/{mixste,hot_mixste,tpc_mixste}.py`` (MLP ratio 2)."""
    s: Shapes = {"Spatial_pos_embed": (1, 17, dim), "Temporal_pos_embed": (1, frames, dim)}
    s.update(linear_shapes("Spatial_patch_to_embedding", dim, 2))
    for kind in ("STEblocks", "TTEblocks"):
        for i in range(depth):
            s.update(block_shapes(f"{kind}.{i}", dim, 2 * dim))
    s.update(norm_shapes("Spatial_norm", dim))
    s.update(norm_shapes("Temporal_norm", dim))
    s.update(norm_shapes("head.0", dim))
    s.update(linear_shapes("head.1", 3, dim))
    if hot_tokens:
        s.update(tra_shapes(frames, hot_tokens, dim))
    return s


def motionbert_shapes(frames: int, dim: int, depth: int, dim_rep: int, hot_tokens: int | None = None) -> Shapes:
    """Keys of MotionBERT's DSTformer / HoT's ``hot_motionbert.py`` (MLP ratio 4)."""
    s: Shapes = {"temp_embed": (1, frames, 1, dim), "pos_embed": (1, 17, dim)}
    s.update(linear_shapes("joints_embed", dim, 3))
    for kind in ("blocks_st", "blocks_ts"):
        for i in range(depth):
            for a in ("s", "t"):
                s.update(block_shapes(f"{kind}.{i}", dim, 4 * dim, suffix=f"_{a}"))
    for i in range(depth):
        s.update(linear_shapes(f"ts_attn.{i}", 2, 2 * dim))
    s.update(norm_shapes("norm", dim))
    s.update(linear_shapes("pre_logits.fc", dim_rep, dim))
    s.update(linear_shapes("head", 3, dim_rep))
    if hot_tokens:
        s.update(tra_shapes(frames, hot_tokens, dim))
    return s


def randomise(shapes: Shapes, seed: int) -> State:
    """Random weights of moderate scale; norm gains around 1."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        fan_in = shape[-1] if len(shape) > 1 else 4
        gain = 1.0 if "norm" in key and key.endswith("weight") and len(shape) == 1 else 0.0
        state[key] = torch.randn(shape, generator=g) / math.sqrt(fan_in) + gain
    return state


def shrink(sd: State, *keys: str, by: float = 0.01) -> State:
    """Scale ``keys`` down so the LayerNorms after them see variances near their eps: a wrong eps shows."""
    return {k: v * by if k in keys else v for k, v in sd.items()}


def meta_state(shapes: Shapes) -> State:
    with torch.device("meta"):
        return {k: torch.empty(s) for k, s in shapes.items()}


# ---------------------------------------------------------------- functional official forwards (eval mode)

def ref_mixste(sd: State, x: Tensor, heads: int = 8, prune: tuple[int, Tensor] | None = None) -> Tensor:
    """Official (hot_/tpc_)mixste forward; ``prune = (layer, sorted frame index [B, f])``.

    Output ``[B, F, J, 3]``; for tpc_mixste (no TRA keys) the poses of the kept frames ``[B, f, J, 3]``.
    """
    b, frames, n, _ = x.shape
    f = frames
    depth = len({k.split(".")[1] for k in sd if k.startswith("STEblocks.")})

    def block(p: str, z: Tensor) -> Tensor:
        z = z + ref_self_attention(sd, f"{p}.attn", ln(sd, f"{p}.norm1", z, 1e-6), heads)
        return z + mlp(sd, f"{p}.mlp", ln(sd, f"{p}.norm2", z, 1e-6))

    z = lin(sd, "Spatial_patch_to_embedding", x.reshape(b * f, n, -1)) + sd["Spatial_pos_embed"]
    c = z.shape[-1]
    for i in range(depth):
        if prune and i == prune[0]:
            z = z.reshape(b, f, n, c)[torch.arange(b)[:, None], prune[1]]
            f = prune[1].shape[1]
            if "pos_embed_token" in sd:
                z = z + sd["pos_embed_token"][:, :, None]
            z = z.reshape(b * f, n, c)
        z = ln(sd, "Spatial_norm", block(f"STEblocks.{i}", z), 1e-6)
        z = z.reshape(b, f, n, c).permute(0, 2, 1, 3).reshape(b * n, f, c)
        if i == 0:
            z = z + sd["Temporal_pos_embed"]
        z = ln(sd, "Temporal_norm", block(f"TTEblocks.{i}", z), 1e-6)
        z = z.reshape(b, n, f, c).permute(0, 2, 1, 3).reshape(b * f, n, c)
    z = z.reshape(b, f, n, c)
    if "x_token" in sd:
        z = ref_tra(sd, z, frames, heads)
    return lin(sd, "head.1", ln(sd, "head.0", z, 1e-5))


def ref_motionbert_attention(sd: State, p: str, x: Tensor, heads: int, seqlen: int, temporal: bool) -> Tensor:
    """MotionBERT's Attention on ``(b f) n c`` tokens, temporal mode by reshaping to ``[B, H, N, F, d]``."""
    bf, n, c = x.shape
    q, k, v = split_qkv(sd, p, x, heads)  # [BF, H, N, d]
    if temporal:
        qt, kt, vt = (t.reshape(-1, seqlen, heads, n, c // heads).permute(0, 2, 3, 1, 4) for t in (q, k, v))
        out = softmax_attention(qt, kt, vt).permute(0, 3, 2, 1, 4).reshape(bf, n, c)
    else:
        out = softmax_attention(q, k, v).transpose(1, 2).reshape(bf, n, c)
    return lin(sd, f"{p}.proj", out)


def ref_motionbert(sd: State, x: Tensor, heads: int = 8, prune: tuple[int, Tensor] | None = None) -> Tensor:
    """Official (hot_)motionbert forward; ``prune = (layer, sorted frame index [B, f])``."""
    b, frames, n, _ = x.shape
    f = frames
    depth = len({k.split(".")[1] for k in sd if k.startswith("blocks_st.")})

    def sub(p: str, a: str, z: Tensor) -> Tensor:
        z = z + ref_motionbert_attention(sd, f"{p}.attn_{a}", ln(sd, f"{p}.norm1_{a}", z, 1e-6), heads, f, a == "t")
        return z + mlp(sd, f"{p}.mlp_{a}", ln(sd, f"{p}.norm2_{a}", z, 1e-6))

    z = lin(sd, "joints_embed", x.reshape(b * f, n, -1)) + sd["pos_embed"]
    c = z.shape[-1]
    z = (z.reshape(b, f, n, c) + sd["temp_embed"]).reshape(b * f, n, c)
    for i in range(depth):
        if prune and i == prune[0]:
            z = z.reshape(b, f, n, c)[torch.arange(b)[:, None], prune[1]]
            f = prune[1].shape[1]
            z = (z + sd["pos_embed_token"][:, :, None]).reshape(b * f, n, c)
        x_st = sub(f"blocks_st.{i}", "t", sub(f"blocks_st.{i}", "s", z))
        x_ts = sub(f"blocks_ts.{i}", "s", sub(f"blocks_ts.{i}", "t", z))
        alpha = torch.softmax(lin(sd, f"ts_attn.{i}", torch.cat([x_st, x_ts], -1)), -1)
        z = x_st * alpha[..., :1] + x_ts * alpha[..., 1:]
    z = ln(sd, "norm", z, 1e-6).reshape(b, f, n, c)
    if "x_token" in sd:
        z = ref_tra(sd, z, frames, heads)
    return lin(sd, "head", torch.tanh(lin(sd, "pre_logits.fc", z)))


# ---------------------------------------------------------------- tests

@torch.no_grad()
def test_mixste_conversion_reproduces_the_official_forward() -> None:
    sd = shrink(randomise(mixste_shapes(frames=27, dim=32, depth=3), seed=1), "Temporal_norm.weight", "Temporal_norm.bias")
    converted = convert_mixste(sd)
    assert converted.config["model"]["num_frames"] == 27 and converted.config["model"]["depth"] == 3
    assert (converted.config["pruner"], converted.config["recoverer"], converted.config["schedule"]) == ("none", "none", "")
    x = torch.randn(2, 27, 17, 2)
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
    x = torch.randn(2, 27, 17, 2)
    out = converted_model(converted)(x)
    assert out.pose3d.shape == (2, 27, 17, 3) and out.kept_index.shape == (2, 9)
    close(out.pose3d, ref_mixste(sd, x, prune=(3, out.kept_index)))


@torch.no_grad()
def test_tpc_mixste_conversion_reads_out_the_centre_frame_of_the_official_forward() -> None:
    sd = randomise(mixste_shapes(frames=27, dim=16, depth=8), seed=3)
    converted = convert_tpc_mixste(sd)
    assert converted.config["pipeline"] == "seq2frame"
    assert (converted.config["pruner"], converted.config["recoverer"], converted.config["schedule"]) == ("tpc", "none", "7:7")
    x = torch.randn(2, 27, 17, 2)
    out = converted_model(converted)(x)
    assert out.pose3d.shape == (2, 1, 17, 3)
    assert (out.kept_index == 13).any(dim=1).all()
    kept = ref_mixste(sd, x, prune=(7, out.kept_index))  # [B, 7, J, 3]
    centre = (out.kept_index == 13).float().argmax(dim=1)
    close(out.pose3d[:, 0], kept[torch.arange(2), centre])


@torch.no_grad()
def test_motionbert_conversion_reproduces_the_official_forward() -> None:
    sd = shrink(randomise(motionbert_shapes(frames=27, dim=32, depth=3, dim_rep=48), seed=4),
                "joints_embed.weight", "joints_embed.bias", "pos_embed", "temp_embed")
    converted = convert_motionbert(sd)
    assert converted.config["model"]["dim_rep"] == 48 and converted.config["model"]["mlp_ratio"] == 4.0
    x = torch.randn(2, 27, 17, 3)
    model = converted_model(converted)
    expected = ref_motionbert(sd, x)
    close(model.backbone(x), expected)
    close(model(x).pose3d, expected)


@torch.no_grad()
def test_hot_motionbert_conversion_reproduces_the_official_forward_for_the_frames_our_model_kept() -> None:
    sd = randomise(motionbert_shapes(frames=27, dim=32, depth=3, dim_rep=48, hot_tokens=9), seed=5)
    converted = convert_hot_motionbert(sd)
    assert (converted.config["pruner"], converted.config["recoverer"], converted.config["schedule"]) == ("tpc", "tra", "1:9")
    assert torch.equal(converted.state_dict["recoverer.queries"], sd["x_token"])
    x = torch.randn(2, 27, 17, 3)
    out = converted_model(converted)(x)
    assert out.pose3d.shape == (2, 27, 17, 3) and out.kept_index.shape == (2, 9)
    close(out.pose3d, ref_motionbert(sd, x, prune=(1, out.kept_index)))


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


def test_official_file_with_wrappers_converts_to_a_native_checkpoint(tmp_path) -> None:
    sd = randomise(motionbert_shapes(frames=27, dim=32, depth=2, dim_rep=48, hot_tokens=9), seed=8)
    src = tmp_path / "hot_motionbert_official.pth"
    torch.save({"model_pos": {f"module.{k}": v for k, v in sd.items()}}, src)
    config = convert_official("hot_motionbert", src, tmp_path / "native.pt")
    model, saved = load_native(tmp_path / "native.pt")
    assert saved == config and config["schedule"] == "1:9"
    x = torch.randn(1, 27, 17, 3)
    with torch.no_grad():
        out = model(x)
        close(out.pose3d, ref_motionbert(sd, x, prune=(1, out.kept_index)))


def test_cli_convert_then_predict_reproduces_the_official_forward(tmp_path) -> None:
    """`h2ot checkpoint convert` → `h2ot predict` on files, as a user runs them."""
    from typer.testing import CliRunner

    from orchestrator.cli import app

    sd = shrink(randomise(mixste_shapes(frames=27, dim=32, depth=3), seed=7), "Temporal_norm.weight", "Temporal_norm.bias")
    torch.save({"model_pos": sd}, tmp_path / "official.pth")  # official files wrap the state_dict
    runner = CliRunner()
    result = runner.invoke(app, ["checkpoint", "convert", "mixste", str(tmp_path / "official.pth"), str(tmp_path / "ours.pt")])
    assert result.exit_code == 0, result.output
    x = torch.randn(3, 27, 17, 2)
    np.save(tmp_path / "in.npy", x.numpy())
    result = runner.invoke(app, ["predict", str(tmp_path / "ours.pt"), str(tmp_path / "in.npy"), str(tmp_path / "out.npy")])
    assert result.exit_code == 0, result.output
    with torch.no_grad():
        close(torch.from_numpy(np.load(tmp_path / "out.npy")), ref_mixste(sd, x))
    # the wrong architecture is refused with the mismatching keys, and nothing is written
    result = runner.invoke(app, ["checkpoint", "convert", "motionbert", str(tmp_path / "official.pth"), str(tmp_path / "bad.pt")])
    assert result.exit_code == 2 and "missing keys: blocks_st.0" in result.stderr and not (tmp_path / "bad.pt").exists()
