"""Building blocks of the functional official forwards the conversion tests compare against.

Plain tensor ops on official state_dict keys (explicit softmax and normalisations, the official token
layouts), sharing nothing with the modules under test. Eval mode throughout. Also the random official
state_dicts and replayed frame selections the tests feed both sides.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from h2ot_core.checkpoint import build_from_config, load_state_strict

State = dict[str, Tensor]
Shapes = dict[str, tuple[int, ...]]


# ---------------------------------------------------------------- official key names and shapes

def linear_shapes(prefix: str, out: int, inp: int, bias: bool = True) -> Iterator[tuple[str, tuple[int, ...]]]:
    yield f"{prefix}.weight", (out, inp)
    if bias:
        yield f"{prefix}.bias", (out,)


def norm_shapes(prefix: str, n: int, batch: bool = False) -> Iterator[tuple[str, tuple[int, ...]]]:
    yield f"{prefix}.weight", (n,)
    yield f"{prefix}.bias", (n,)
    if batch:
        yield f"{prefix}.running_mean", (n,)
        yield f"{prefix}.running_var", (n,)
        yield f"{prefix}.num_batches_tracked", ()


def block_shapes(p: str, dim: int, hidden: int, suffix: str = "") -> Shapes:
    """A pre-norm transformer block's keys: ``norm1``, ``attn.qkv``, ``attn.proj``, ``norm2``, ``mlp.fc1/2``.

    ``suffix`` follows each sub-module name as the official files spell it (DSTformer: ``norm1_s``, ``attn_s`` …).
    """
    s: Shapes = {}
    s.update(norm_shapes(f"{p}.norm1{suffix}", dim))
    s.update(linear_shapes(f"{p}.attn{suffix}.qkv", 3 * dim, dim))
    s.update(linear_shapes(f"{p}.attn{suffix}.proj", dim, dim))
    s.update(norm_shapes(f"{p}.norm2{suffix}", dim))
    s.update(linear_shapes(f"{p}.mlp{suffix}.fc1", hidden, dim))
    s.update(linear_shapes(f"{p}.mlp{suffix}.fc2", dim, hidden))
    return s


def tra_shapes(frames: int, tokens: int, dim: int, qkv_bias: bool = True) -> Shapes:
    """HoT's recovering attention: learnable queries, the kept tokens' position embedding, cross-attention."""
    s: Shapes = {"pos_embed_token": (1, tokens, dim), "x_token": (1, frames, dim)}
    for name in ("linear_q", "linear_k", "linear_v"):
        s.update(linear_shapes(f"cross_attention.{name}", dim, dim, bias=qkv_bias))
    s.update(linear_shapes("cross_attention.proj", dim, dim))
    return s


# ---------------------------------------------------------------- random official state_dicts

def randomise_ln(shapes: Shapes, seed: int) -> State:
    """Random weights of moderate scale; norm gains around 1 (MixSTE, MotionBERT: layer norms only)."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in shapes.items():
        fan_in = shape[-1] if len(shape) > 1 else 4
        gain = 1.0 if "norm" in key and key.endswith("weight") and len(shape) == 1 else 0.0
        state[key] = torch.randn(shape, generator=g) / math.sqrt(fan_in) + gain
    return state


def randomise_bn(shapes: Shapes, seed: int) -> State:
    """Random weights of moderate scale; positive variances; integer batch counters (MotionAGFormer, MHFormer)."""
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


def shrink(sd: State, *keys: str, by: float = 0.01) -> State:
    """Scale ``keys`` down so the LayerNorms after them see variances near their eps: a wrong eps shows."""
    return {k: v * by if k in keys else v for k, v in sd.items()}


def meta_state(shapes: Shapes) -> State:
    with torch.device("meta"):
        return {k: torch.empty(s) for k, s in shapes.items()}


def sorted_index(batch: int, frames: int, keep: int, seed: int, centre: int | None = None) -> Tensor:
    """A random sorted frame index ``[batch, keep]`` (holding ``centre`` when given) to replay on both sides."""
    g = torch.Generator().manual_seed(seed)
    rows = []
    for _ in range(batch):
        pool = [i for i in range(frames) if i != centre]
        picked = [pool[i] for i in torch.randperm(len(pool), generator=g)[: keep - (centre is not None)].tolist()]
        rows.append(sorted(picked + ([centre] if centre is not None else [])))
    return torch.tensor(rows)


# ---------------------------------------------------------------- functional layers

def lin(sd: State, p: str, x: Tensor) -> Tensor:
    y = x @ sd[f"{p}.weight"].T
    return y + sd[f"{p}.bias"] if f"{p}.bias" in sd else y


def ln(sd: State, p: str, x: Tensor, eps: float) -> Tensor:
    mu = x.mean(-1, keepdim=True)
    var = x.var(-1, unbiased=False, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * sd[f"{p}.weight"] + sd[f"{p}.bias"]


def mlp(sd: State, p: str, x: Tensor) -> Tensor:
    return lin(sd, f"{p}.fc2", F.gelu(lin(sd, f"{p}.fc1", x)))


def bn(sd: State, p: str, x: Tensor) -> Tensor:
    """Eval batch norm with the channel on axis 1 of ``x [N, Ch, ...]``."""
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean, var = sd[f"{p}.running_mean"].view(shape), sd[f"{p}.running_var"].view(shape)
    return (x - mean) / torch.sqrt(var + 1e-5) * sd[f"{p}.weight"].view(shape) + sd[f"{p}.bias"].view(shape)


def softmax_attention(q: Tensor, k: Tensor, v: Tensor) -> Tensor:
    a = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    a = torch.exp(a - a.amax(-1, keepdim=True))
    return (a / a.sum(-1, keepdim=True)) @ v


def split_qkv(sd: State, p: str, x: Tensor, heads: int) -> tuple[Tensor, Tensor, Tensor]:
    """``x [N, T, C]`` → q, k, v ``[N, H, T, d]`` from the fused official ``qkv`` projection."""
    n, t, c = x.shape
    q, k, v = lin(sd, f"{p}.qkv", x).reshape(n, t, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
    return q, k, v


def ref_self_attention(sd: State, p: str, x: Tensor, heads: int) -> Tensor:
    n, t, c = x.shape
    out = softmax_attention(*split_qkv(sd, p, x, heads))
    return lin(sd, f"{p}.proj", out.transpose(1, 2).reshape(n, t, c))


def ref_cross_attention(sd: State, p: str, xq: Tensor, xk: Tensor, xv: Tensor, heads: int) -> Tensor:
    """``xq [N, Tq, C]``, ``xk, xv [N, Tk, C]`` → ``[N, Tq, C]`` through ``linear_q/k/v`` and ``proj``."""
    c = xq.shape[-1]

    def split(z: Tensor) -> Tensor:
        return z.reshape(z.shape[0], z.shape[1], heads, c // heads).transpose(1, 2)

    out = softmax_attention(split(lin(sd, f"{p}.linear_q", xq)), split(lin(sd, f"{p}.linear_k", xk)),
                            split(lin(sd, f"{p}.linear_v", xv)))
    return lin(sd, f"{p}.proj", out.transpose(1, 2).reshape(xq.shape[0], xq.shape[1], c))


def ref_tra(sd: State, x: Tensor, frames: int, heads: int) -> Tensor:
    """HoT's ``x_token + cross_attention(x_token, x, x)`` per joint sequence: ``x [B, f, J, C]`` → ``[B, F, J, C]``."""
    b, f, j, c = x.shape
    seq = x.transpose(1, 2).reshape(b * j, f, c)
    query = sd["x_token"].expand(b * j, -1, -1)
    out = query + ref_cross_attention(sd, "cross_attention", query, seq, seq, heads)
    return out.reshape(b, j, frames, c).transpose(1, 2)


# ---------------------------------------------------------------- the side under test

def converted_model(converted) -> torch.nn.Module:
    """The native model a conversion describes, with its converted weights, in eval mode."""
    model = build_from_config(converted.config)
    load_state_strict(model, converted.state_dict, "test")
    return model.eval()


def close(actual: Tensor, expected: Tensor) -> None:
    """Equal to float32 round-off."""
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-5)
