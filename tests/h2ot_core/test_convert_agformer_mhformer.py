"""Official MotionAGFormer / MHFormer checkpoints convert to models that compute the official forward pass.

The reference forwards below are written from the official code's structure with plain tensor ops
(explicit softmax, explicit normalisations) and read the official key names, so they share nothing
with the converted modules.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from official_ref import (
    State,
    block_shapes,
    close,
    converted_model,
    lin,
    linear_shapes,
    ln,
    mlp,
    norm_shapes,
    ref_cross_attention,
    ref_self_attention,
    ref_tra,
    softmax_attention,
    tra_shapes,
)
from torch import Tensor

from h2ot_core.checkpoint import build_from_config, load_native
from h2ot_core.convert.mhformer import convert_mhformer, convert_tpc_mhformer
from h2ot_core.convert.motionagformer import convert_hot_motionagformer, convert_motionagformer
from h2ot_core.convert.service import convert_official
from h2ot_core.errors import CheckpointError

# The official spatial graph, in the official file's own form.
OFFICIAL_CONNECTIONS = {10: [9], 9: [8, 10], 8: [7, 9], 14: [15, 8], 15: [16, 14], 11: [12, 8], 12: [13, 11],
                        7: [0, 8], 0: [1, 7], 1: [2, 0], 2: [3, 1], 4: [5, 0], 5: [6, 4], 16: [15], 13: [12],
                        3: [2], 6: [5]}


# ---------------------------------------------------------------- random official state_dicts

def randomise(shapes: dict[str, tuple[int, ...]], seed: int) -> State:
    """Random weights of moderate scale; positive variances; integer batch counters."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(7)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        else:
            fan_in = shape[-1] if len(shape) > 1 else 4
            state[key] = torch.randn(shape, generator=g) / math.sqrt(fan_in) + (1.0 if key.endswith("norm1.weight") else 0)
    return state


def agformer_shapes(frames: int, dim: int, depth: int, dim_rep: int, hot: tuple[int, int] | None = None,
                    joints: int = 17) -> dict[str, tuple[int, ...]]:
    s: dict[str, tuple[int, ...]] = {"pos_embed": (1, joints, dim)}
    s.update(linear_shapes("joints_embed", dim, 3))
    s.update(norm_shapes("norm", dim))
    for i in range(depth):
        nodes = hot[1] if hot and i >= hot[0] else frames
        for unit in ("att_spatial", "att_temporal", "graph_spatial", "graph_temporal"):
            p = f"layers.{i}.{unit}"
            s[f"{p}.layer_scale_1"] = s[f"{p}.layer_scale_2"] = (dim,)
            s.update(norm_shapes(f"{p}.norm1", dim))
            s.update(norm_shapes(f"{p}.norm2", dim))
            s.update(linear_shapes(f"{p}.mlp.fc1", 4 * dim, dim))
            s.update(linear_shapes(f"{p}.mlp.fc2", dim, 4 * dim))
            if unit.startswith("att"):
                s.update(linear_shapes(f"{p}.mixer.qkv", 3 * dim, dim, bias=False))
                s.update(linear_shapes(f"{p}.mixer.proj", dim, dim))
            else:
                s.update(linear_shapes(f"{p}.mixer.U", dim, dim))
                s.update(linear_shapes(f"{p}.mixer.V", dim, dim))
                s.update(norm_shapes(f"{p}.mixer.batch_norm", joints if unit == "graph_spatial" else nodes, batch=True))
        s.update(linear_shapes(f"layers.{i}.fusion", 2, 2 * dim))
    s.update(linear_shapes("rep_logit.fc", dim_rep, dim))
    s.update(linear_shapes("head", 3, dim_rep))
    if hot:
        s.update(tra_shapes(frames, hot[1], dim, qkv_bias=False))
    return s


def mhformer_shapes(frames: int, dim: int, hidden: int, mhg_depth: int, joints: int = 17) -> dict[str, tuple[int, ...]]:
    tokens = 2 * joints
    s: dict[str, tuple[int, ...]] = {}
    for h in (1, 2, 3):
        if frames > 27:
            s[f"embedding_{h}.weight"], s[f"embedding_{h}.bias"] = (dim, tokens, 1), (dim,)
        else:
            s[f"embedding_{h}.0.weight"], s[f"embedding_{h}.0.bias"] = (dim, tokens, 1), (dim,)
            s.update(norm_shapes(f"embedding_{h}.1", dim, batch=True))
        s.update(norm_shapes(f"norm_{h}", frames))
        e = f"Transformer_encoder_{h}"
        s[f"{e}.pos_embed"] = (1, tokens, frames)
        for i in range(mhg_depth):
            s.update(block_shapes(f"{e}.blocks.{i}", frames, 2 * frames))
        s.update(norm_shapes(f"{e}.norm", frames))
        s[f"Transformer_hypothesis.pos_embed_{h}"] = (1, frames, dim)
    t = "Transformer_hypothesis"
    for i in range(2):
        b = f"{t}.SHR_blocks.{i}"
        for h in (1, 2, 3):
            s.update(norm_shapes(f"{b}.norm1_{h}", dim))
            s.update(linear_shapes(f"{b}.attn_{h}.qkv", 3 * dim, dim))
            s.update(linear_shapes(f"{b}.attn_{h}.proj", dim, dim))
        s.update(norm_shapes(f"{b}.norm2", 3 * dim))
        s.update(linear_shapes(f"{b}.mlp.fc1", hidden, 3 * dim))
        s.update(linear_shapes(f"{b}.mlp.fc2", 3 * dim, hidden))
    b = f"{t}.CHI_blocks.0"
    for h in (1, 2, 3):
        for m in (1, 2, 3):
            s.update(norm_shapes(f"{b}.norm3_{h}{m}", dim))
        for name in ("linear_q", "linear_k", "linear_v", "proj"):
            s.update(linear_shapes(f"{b}.attn_{h}.{name}", dim, dim))
    s.update(norm_shapes(f"{b}.norm2", 3 * dim))
    s.update(linear_shapes(f"{b}.mlp.fc1", hidden, 3 * dim))
    s.update(linear_shapes(f"{b}.mlp.fc2", 3 * dim, hidden))
    s.update(norm_shapes(f"{t}.norm", 3 * dim))
    s.update(norm_shapes("regression.0", 3 * dim, batch=True))
    s["regression.1.weight"], s["regression.1.bias"] = (3 * joints, 3 * dim, 1), (3 * joints,)
    return s


# ---------------------------------------------------------------- functional official forwards (eval mode)

def bn(sd: State, p: str, x: Tensor) -> Tensor:
    """Eval batch norm with the channel on axis 1 of ``x [N, Ch, ...]``."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean, var = sd[f"{p}.running_mean"].view(shape), sd[f"{p}.running_var"].view(shape)
    return (x - mean) / torch.sqrt(var + 1e-5) * sd[f"{p}.weight"].view(shape) + sd[f"{p}.bias"].view(shape)


def ref_agformer_attention(sd: State, p: str, x: Tensor, heads: int, temporal: bool) -> Tensor:
    b, t, j, c = x.shape
    q, k, v = lin(sd, f"{p}.qkv", x).reshape(b, t, j, 3, heads, c // heads).permute(3, 0, 4, 1, 2, 5)
    if temporal:
        out = softmax_attention(q.transpose(2, 3), k.transpose(2, 3), v.transpose(2, 3)).permute(0, 3, 2, 1, 4)
    else:
        out = softmax_attention(q, k, v).permute(0, 2, 3, 1, 4)
    return lin(sd, f"{p}.proj", out.reshape(b, t, j, c))


def ref_gcn(sd: State, p: str, x: Tensor, temporal: bool, neighbours: int) -> Tensor:
    b, t, j, c = x.shape
    if temporal:
        seq = x.transpose(1, 2).reshape(b * j, t, c)
        sim = seq @ seq.transpose(1, 2)
        adj = (sim >= sim.topk(neighbours, dim=-1)[0][..., -1:]).float()
    else:
        seq = x.reshape(b * t, j, c)
        adj = torch.zeros(j, j)
        for node, linked in OFFICIAL_CONNECTIONS.items():
            adj[node, linked] = 1
        adj = adj.repeat(b * t, 1, 1)
    d = torch.diag_embed(adj.sum(-1) ** -0.5)
    agg = d @ adj @ d @ lin(sd, f"{p}.V", seq)
    out = F.relu(seq + bn(sd, f"{p}.batch_norm", agg + lin(sd, f"{p}.U", seq)))
    return out.reshape(b, j, t, c).transpose(1, 2) if temporal else out.reshape(b, t, j, c)


def ref_motionagformer(sd: State, x: Tensor, heads: int, neighbours: int,
                       prune: tuple[int, Tensor] | None = None) -> Tensor:
    """Official (hot_)motionagformer forward; ``prune = (layer, sorted frame index [B, f])``."""
    b, frames = x.shape[:2]
    x = lin(sd, "joints_embed", x) + sd["pos_embed"]
    depth = len({k.split(".")[1] for k in sd if k.startswith("layers.")})

    def unit(p: str, h: Tensor, mixer) -> Tensor:
        h = h + sd[f"{p}.layer_scale_1"] * mixer(f"{p}.mixer", ln(sd, f"{p}.norm1", h, 1e-5))
        return h + sd[f"{p}.layer_scale_2"] * mlp(sd, f"{p}.mlp", ln(sd, f"{p}.norm2", h, 1e-5))

    for i in range(depth):
        if prune and i == prune[0]:
            x = x[torch.arange(b)[:, None], prune[1]] + sd["pos_embed_token"][:, :, None]
        p = f"layers.{i}"
        x_attn = unit(f"{p}.att_spatial", x, lambda q, h: ref_agformer_attention(sd, q, h, heads, False))
        x_attn = unit(f"{p}.att_temporal", x_attn, lambda q, h: ref_agformer_attention(sd, q, h, heads, True))
        x_graph = unit(f"{p}.graph_spatial", x, lambda q, h: ref_gcn(sd, q, h, False, neighbours))
        x_graph = unit(f"{p}.graph_temporal", x_graph, lambda q, h: ref_gcn(sd, q, h, True, neighbours))
        alpha = torch.softmax(lin(sd, f"layers.{i}.fusion", torch.cat([x_attn, x_graph], -1)), -1)
        x = x_attn * alpha[..., :1] + x_graph * alpha[..., 1:]
    x = ln(sd, "norm", x, 1e-5)
    if prune:
        x = ref_tra(sd, x, frames, heads)
    return lin(sd, "head", torch.tanh(lin(sd, "rep_logit.fc", x)))


def ref_mhformer(sd: State, x: Tensor, heads: int, index: Tensor | None = None) -> Tensor:
    """Official (tpc_)mhformer forward, ``[B, f, J, 3]`` for the frames kept by ``index`` (before SHR 1)."""
    b, frames, joints, _ = x.shape
    x = x.permute(0, 2, 3, 1).reshape(b, joints * 2, frames)
    hyps = []
    for h in (1, 2, 3):
        e = f"Transformer_encoder_{h}"
        z = ln(sd, f"norm_{h}", x, 1e-5) + sd[f"{e}.pos_embed"]
        for i in range(len({k.split(".")[2] for k in sd if k.startswith(f"{e}.blocks.")})):
            p = f"{e}.blocks.{i}"
            z = z + ref_self_attention(sd, f"{p}.attn", ln(sd, f"{p}.norm1", z, 1e-6), 9)
            z = z + mlp(sd, f"{p}.mlp", ln(sd, f"{p}.norm2", z, 1e-6))
        x = x + ln(sd, f"{e}.norm", z, 1e-6)
        if frames > 27:
            emb = torch.einsum("oi,bif->bof", sd[f"embedding_{h}.weight"][..., 0], x) + sd[f"embedding_{h}.bias"][:, None]
        else:
            emb = torch.einsum("oi,bif->bof", sd[f"embedding_{h}.0.weight"][..., 0], x)
            emb = F.relu(bn(sd, f"embedding_{h}.1", emb + sd[f"embedding_{h}.0.bias"][:, None]))
        hyps.append(emb.transpose(1, 2) + sd[f"Transformer_hypothesis.pos_embed_{h}"])
    t = "Transformer_hypothesis"
    for i in range(2):
        if i == 1 and index is not None:
            hyps = [hyp[torch.arange(b)[:, None], index] for hyp in hyps]
        p = f"{t}.SHR_blocks.{i}"
        hyps = [hyp + ref_self_attention(sd, f"{p}.attn_{h + 1}", ln(sd, f"{p}.norm1_{h + 1}", hyp, 1e-6), heads)
                for h, hyp in enumerate(hyps)]
        cat = torch.cat(hyps, -1)
        cat = cat + mlp(sd, f"{p}.mlp", ln(sd, f"{p}.norm2", cat, 1e-6))
        hyps = list(cat.chunk(3, dim=-1))
    p = f"{t}.CHI_blocks.0"
    x1, x2, x3 = hyps
    x1 = x1 + ref_cross_attention(sd, f"{p}.attn_1", ln(sd, f"{p}.norm3_11", x2, 1e-6), ln(sd, f"{p}.norm3_12", x3, 1e-6),
                                  ln(sd, f"{p}.norm3_13", x1, 1e-6), heads)
    x2 = x2 + ref_cross_attention(sd, f"{p}.attn_2", ln(sd, f"{p}.norm3_21", x1, 1e-6), ln(sd, f"{p}.norm3_22", x3, 1e-6),
                                  ln(sd, f"{p}.norm3_23", x2, 1e-6), heads)
    x3 = x3 + ref_cross_attention(sd, f"{p}.attn_3", ln(sd, f"{p}.norm3_31", x1, 1e-6), ln(sd, f"{p}.norm3_32", x2, 1e-6),
                                  ln(sd, f"{p}.norm3_33", x3, 1e-6), heads)
    cat = torch.cat([x1, x2, x3], -1)
    cat = cat + mlp(sd, f"{p}.mlp", ln(sd, f"{p}.norm2", cat, 1e-6))
    feat = bn(sd, "regression.0", ln(sd, f"{t}.norm", cat, 1e-6).transpose(1, 2))
    out = torch.einsum("oi,bif->bof", sd["regression.1.weight"][..., 0], feat) + sd["regression.1.bias"][:, None]
    return out.reshape(b, joints, 3, -1).permute(0, 3, 1, 2)


# ---------------------------------------------------------------- tests

def sorted_index(batch: int, frames: int, keep: int, seed: int, centre: int | None = None) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(batch):
        pool = [i for i in range(frames) if i != centre]
        picked = [pool[i] for i in torch.randperm(len(pool), generator=g)[: keep - (centre is not None)].tolist()]
        rows.append(sorted(picked + ([centre] if centre is not None else [])))
    return torch.tensor(rows)


@torch.no_grad()
def test_motionagformer_conversion_reproduces_the_official_forward() -> None:
    sd = randomise(agformer_shapes(frames=27, dim=32, depth=3, dim_rep=48), seed=1)
    converted = convert_motionagformer(sd)
    assert converted.config["model"]["num_frames"] == 27 and converted.config["model"]["depth"] == 3
    x = torch.randn(2, 27, 17, 3)
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
    x = torch.randn(2, 27, 17, 3)
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


@pytest.mark.parametrize("frames", [27, 45])
@torch.no_grad()
def test_mhformer_conversion_reproduces_the_official_forward(frames: int) -> None:
    # 27 frames uses the official short-clip embedding (Conv1d + BatchNorm + ReLU), 45 the plain Conv1d.
    sd = randomise(mhformer_shapes(frames=frames, dim=32, hidden=64, mhg_depth=2), seed=frames)
    converted = convert_mhformer(sd)
    assert converted.config["model"]["mhg_depth"] == 2 and converted.config["model"]["mlp_ratio"] == 2.0
    model = converted_model(converted)
    x = torch.randn(2, frames, 17, 2)
    expected = ref_mhformer(sd, x, heads=8)
    close(model.backbone(x), expected)
    close(model(x).pose3d[:, 0], expected[:, frames // 2])


@torch.no_grad()
def test_tpc_mhformer_conversion_reads_the_centre_frame_of_the_kept_tokens() -> None:
    sd = randomise(mhformer_shapes(frames=27, dim=32, hidden=64, mhg_depth=2), seed=5)
    converted = convert_tpc_mhformer(sd)
    assert (converted.config["pruner"], converted.config["recoverer"], converted.config["schedule"]) == ("tpc", "none", "1:9")
    x = torch.randn(2, 27, 17, 2)
    index = sorted_index(2, 27, 9, seed=6, centre=13)
    out = converted_model(converted)(x, replay=(index,))
    expected = ref_mhformer(sd, x, heads=8, index=index)
    centre_pos = (index == 13).float().argmax(dim=1)
    close(out.pose3d[:, 0], expected[torch.arange(2), centre_pos])


def test_official_file_with_wrappers_converts_to_a_native_checkpoint(tmp_path) -> None:
    sd = randomise(mhformer_shapes(frames=27, dim=32, hidden=64, mhg_depth=2), seed=7)
    src = tmp_path / "mhformer_official.pth"
    torch.save({"model": {f"module.{k}": v for k, v in sd.items()}}, src)
    config = convert_official("tpc_mhformer", src, tmp_path / "native.pt")
    model, saved = load_native(tmp_path / "native.pt")
    assert saved == config and config["schedule"] == "1:9"
    x = torch.randn(1, 27, 17, 2)
    with torch.no_grad():
        close(model.backbone(x), ref_mhformer(sd, x, heads=8))


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
