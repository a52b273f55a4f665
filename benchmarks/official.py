"""fp32 against the official code, side by side on the same weights: ``make bench-official``.

For each backbone at its official size, unpruned: a random official state_dict (the official key names),
converted to our model with ``h2ot_core.convert``. The official side is the functional forward the
conversion tests prove equal to the converted modules — the official files' op sequence and token layouts
(``(b f) n c``, explicit ``softmax(q kᵀ) v`` attention maps, separate q/k/v or fused qkv as upstream) — timed
with the torch ops the official files call (``nn.Linear``, ``nn.LayerNorm``, ``nn.BatchNorm``,
``Tensor.softmax``); the tests spell those out by hand so they share nothing with the modules under test,
which would make the official side slower than it is. Ours runs as ``h2ot predict`` runs it (fused SDPA).

Both fp32 under ``torch.inference_mode()``, timed interleaved round-robin at each batch: medians of
``--repeats`` passes (more for a model under 1 s a pass, up to 15) after the pass that gives the outputs'
relative difference (the proof that both compute the same thing). GFLOP/s count all matmuls of the model
(``gflops_total``; the same arithmetic on both sides, the official side also materialises the attention
maps) next to the machine's fp32 GEMM peak (the best of several 2048² matmuls, measured first). CPU only:
the references build their constants there.

HoT variants are left out: the official HoT forward computes its clustering inside, while the reference
replays a given frame selection, so its time would leave the pruner's work out.

    python -m benchmarks.official [--backbones mixste,motionbert,motionagformer,mhformer] [--batches 1,8]
                                  [--repeats 3] [--threads 2] [--out benchmarks/results/official.md]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.output import (
    add_model_arguments,
    add_out_argument,
    md_table,
    measured_line,
    print_row,
    write_result,
)
from benchmarks.precision import rel_diff, timed_round_robin
from h2ot_core.convert.mhformer import convert_mhformer
from h2ot_core.convert.mixste import convert_mixste
from h2ot_core.convert.motionagformer import convert_motionagformer
from h2ot_core.convert.motionbert import convert_motionbert
from h2ot_core.cost import count_flops, example_input
from h2ot_core.names import BACKBONE_INFO

# The official forwards live with the conversion tests that prove them equal to the converted modules
# (one copy, tested); they import each other flat (``from official_ref import ...``), so their folder goes
# on the path.
_REFERENCES = str(Path(__file__).resolve().parents[1] / "tests" / "h2ot_core" / "convert")
if _REFERENCES not in sys.path:
    sys.path.append(_REFERENCES)

import official_mhformer  # noqa: E402
import official_mixste  # noqa: E402
import official_motionagformer  # noqa: E402
import official_motionbert  # noqa: E402
import official_ref  # noqa: E402

HEADER = ("backbone", "batch", "official ms", "ours ms", "ours vs official", "official GFLOP/s", "ours GFLOP/s",
          "ours, % of fp32 GEMM peak", "output difference")

Forward = Callable[[torch.Tensor], torch.Tensor]
State = dict[str, torch.Tensor]
Reference = Callable[[State, torch.Tensor], torch.Tensor]
Converter = Callable[[State], Any]


# ---------------------------------------------------------------- the official files' torch ops

def _linear(sd: State, p: str, x: torch.Tensor) -> torch.Tensor:
    return F.linear(x, sd[f"{p}.weight"], sd.get(f"{p}.bias"))  # nn.Linear


def _layer_norm(sd: State, p: str, x: torch.Tensor, eps: float) -> torch.Tensor:
    return F.layer_norm(x, x.shape[-1:], sd[f"{p}.weight"], sd[f"{p}.bias"], eps)  # nn.LayerNorm


def _batch_norm(sd: State, p: str, x: torch.Tensor) -> torch.Tensor:
    return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"],
                        sd[f"{p}.bias"], training=False, eps=1e-5)  # nn.BatchNorm1d/2d in eval mode


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    return ((q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5).softmax(dim=-1) @ v  # every official Attention


OFFICIAL_OPS = {"lin": _linear, "ln": _layer_norm, "bn": _batch_norm, "softmax_attention": _attention}
_MODULES = (official_ref, official_mixste, official_motionbert, official_motionagformer, official_mhformer)


@contextlib.contextmanager
def official_ops(ops: dict[str, Callable[..., torch.Tensor]] = OFFICIAL_OPS) -> Iterator[None]:
    """The references' hand-written layers swapped for the torch ops the official files call (``ops``, by
    layer name), where each reference module looks them up; restored on exit."""
    saved = [(m, name, getattr(m, name)) for m in _MODULES for name in ops if hasattr(m, name)]
    try:
        for module, name, _ in saved:
            setattr(module, name, ops[name])
        yield
    finally:
        for module, name, fn in saved:
            setattr(module, name, fn)


# ---------------------------------------------------------------- the two sides

def _mixste(d: dict) -> tuple[State, Converter, Reference]:
    sd = official_ref.randomise_ln(official_mixste.mixste_shapes(d["num_frames"], d["dim"], d["depth"]), seed=1)
    return sd, convert_mixste, lambda sd, x: official_mixste.ref_mixste(sd, x, heads=d["num_heads"])


def _motionbert(d: dict) -> tuple[State, Converter, Reference]:
    shapes = official_motionbert.motionbert_shapes(d["num_frames"], d["dim"], d["depth"], d["dim_rep"])
    return (official_ref.randomise_ln(shapes, seed=2), convert_motionbert,
            lambda sd, x: official_motionbert.ref_motionbert(sd, x, heads=d["num_heads"]))


def _motionagformer(d: dict) -> tuple[State, Converter, Reference]:
    shapes = official_motionagformer.agformer_shapes(d["num_frames"], d["dim"], d["depth"], d["dim_rep"])
    return (official_ref.randomise_bn(shapes, seed=3), convert_motionagformer,
            lambda sd, x: official_motionagformer.ref_motionagformer(sd, x, heads=d["num_heads"],
                                                                     neighbours=d["neighbour_num"]))


def _mhformer(d: dict) -> tuple[State, Converter, Reference]:
    shapes = official_mhformer.mhformer_shapes(d["num_frames"], d["dim"], int(d["mlp_ratio"] * d["dim"]),
                                               d["mhg_depth"])
    return (official_ref.randomise_bn(shapes, seed=4), convert_mhformer,
            lambda sd, x: official_mhformer.ref_mhformer(sd, x, heads=d["num_heads"]))


#: per backbone, from its official size: a random official state_dict, its converter and the official forward
OFFICIAL: dict[str, Callable[[dict], tuple[State, Converter, Reference]]] = {
    "mixste": _mixste, "motionbert": _motionbert, "motionagformer": _motionagformer, "mhformer": _mhformer}


def official_pair(backbone: str) -> tuple[torch.nn.Module, Forward]:
    """Our converted model and the official forward ``x -> [B, F, J, 3]``, on one random official state_dict."""
    sd, convert, reference = OFFICIAL[backbone](BACKBONE_INFO[backbone].defaults)
    return official_ref.converted_model(convert(sd)), lambda x: reference(sd, x)


def fp32_gemm_peak(n: int = 2048, passes: int = 7) -> float:
    """GFLOP/s of the fastest of ``passes`` ``n x n`` fp32 matmuls (the best pass: contention only slows)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(passes):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def _row(backbone: str, model: torch.nn.Module, official: Forward, total: float, batch: int, repeats: int,
         peak: float) -> tuple[object, ...]:
    torch.manual_seed(1)
    x = example_input(model, batch)
    t0 = time.perf_counter()
    ref = official(x)
    first_s = time.perf_counter() - t0
    ours = model(x).pose3d  # with the line above: the comparison, and the warm-up of both
    # A fast model gets more passes (at least ~3 s per side): at 0.2 s a pass, 3 passes' median swings by 10%.
    repeats = max(repeats, min(15, int(3.0 / first_s)))
    if ours.shape[1] == 1 < ref.shape[1]:  # seq2frame: ours is the centre frame of the official output
        ref = ref[:, ref.shape[1] // 2, None]
    diff = rel_diff(ours, ref)
    ms = timed_round_robin({"official": lambda: official(x), "ours": lambda: model(x).pose3d}, repeats,
                           torch.device("cpu"), warmup=False)
    gfs = {k: total * batch / (v / 1e3) for k, v in ms.items()}
    return (backbone, batch, f"{ms['official']:.1f}", f"{ms['ours']:.1f}", f"**{ms['official'] / ms['ours']:.2f}×**",
            f"{gfs['official']:.0f}", f"{gfs['ours']:.0f}", f"{100 * gfs['ours'] / peak:.0f}%", f"{diff:.1e}")


def official_rows(backbones: list[str], batches: list[int], repeats: int, peak: float) -> list[tuple[object, ...]]:
    """One row per backbone and batch (columns :data:`HEADER`), each printed as it is measured."""
    rows = []
    for backbone in backbones:
        model, official = official_pair(backbone)
        total = count_flops(model, example_input(model))[1]  # per clip; not under inference_mode (hooks)
        with torch.inference_mode(), official_ops():
            for batch in batches:
                row = _row(backbone, model, official, total, batch, repeats, peak)
                rows.append(row)
                print_row(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(ap, repeats=3, threads=2)
    add_out_argument(ap, "official")
    args = ap.parse_args()
    backbones = args.backbones.split(",")
    if unknown := [b for b in backbones if b not in OFFICIAL]:
        ap.error(f"--backbones: no official forward for {', '.join(unknown)}; known: {', '.join(OFFICIAL)}")
    torch.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    peak = fp32_gemm_peak()
    print(f"torch {torch.__version__}, {args.threads} threads, 1-min load {load:.1f}; fp32 GEMM peak {peak:.0f} "
          f"GFLOP/s", flush=True)
    rows = official_rows(backbones, [int(b) for b in args.batches.split(",")], args.repeats, peak)
    write_result([f"**fp32, ours against the official code's forward (same weights; fp32 GEMM peak {peak:.0f} "
                  f"GFLOP/s)**", "", *md_table(HEADER, rows), "",
                  measured_line("benchmarks.official", device=f"cpu, 1-min load {load:.1f} at start")], args.out)


if __name__ == "__main__":
    main()
