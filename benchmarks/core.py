"""Core benchmark: GFLOPs and CPU latency of every backbone unpruned, HoT and H2OT, side by side.

For each backbone at its official size (or ``--frames``), batch 1 and batch 8:
- the FLOPs ratio (unpruned / pruned) next to the measured speed-up (target: speed-up >= 0.9 x FLOPs ratio);
- our unpruned model against the same model with a straightforward explicit-softmax attention
  (target: ours >= 1.5x faster).
Latency is the median of ``--repeats`` timed passes after warm-up; all variants of a backbone are
timed interleaved, round-robin, so machine noise hits them alike. ``--device cuda`` times on a GPU
(synchronising after every pass), ``--bf16`` under bfloat16 autocast.

    python -m benchmarks.core [--backbones mixste,motionbert] [--batches 1,8] [--repeats 5] [--threads N]
                              [--device cuda] [--bf16] [--out benchmarks/results/core.md]
                              [--out-attention benchmarks/results/attention.md]

The two tables go to ``benchmarks/results/core.md`` and ``attention.md`` (``make readme`` copies them into
the README).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

from benchmarks.output import (
    RESULTS_DIR,
    add_model_arguments,
    add_out_argument,
    md_table,
    measured_line,
    print_row,
    write_result,
)
from h2ot_core.attention import explicit_attention as materialised_attention
from h2ot_core.cost import count_flops, example_input
from h2ot_core.factory import create_model
from h2ot_core.names import BACKBONE_INFO


def explicit_sdpa(q, k, v, *_, **__):
    """What a straightforward implementation does: materialise softmax(QK^T/sqrt(d)) and multiply
    (:func:`h2ot_core.attention.explicit_attention`; :func:`h2ot_core.attention.sdpa` passes no mask or scale)."""
    return materialised_attention(q, k, v)


@contextlib.contextmanager
def explicit_attention() -> Iterator[None]:
    fused = F.scaled_dot_product_attention
    F.scaled_dot_product_attention = explicit_sdpa
    try:
        yield
    finally:
        F.scaled_dot_product_attention = fused


def variants(backbone: str) -> dict[str, tuple[str, str, str]]:
    info = BACKBONE_INFO[backbone]
    seq2frame = info.pipeline == "seq2frame"
    return {
        "unpruned": ("none", "none", ""),
        "HoT (tpc+tra)": ("tpc", "none" if seq2frame else "tra", info.hot_schedule),
        "H2OT (tps+tri)": ("tps", "none" if seq2frame else "tri", info.h2ot_schedule),
    }


@torch.inference_mode()
def time_round_robin(fns: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    for fn in fns.values():
        fn()  # warm-up
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def forward(model: torch.nn.Module, x: torch.Tensor, bf16: bool) -> None:
    """One timed pass: under bf16 autocast if asked, waiting for the GPU's queue to drain."""
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=bf16):
        model(x)
    if x.device.type == "cuda":
        torch.cuda.synchronize()


PRUNING_HEADER = ("backbone", "batch", "variant", "schedule", "GFLOPs", "latency ms", "FLOPs ratio", "speed-up",
                  "speed-up / FLOPs ratio")
ATTENTION_HEADER = ("backbone", "batch", "explicit softmax ms", "fused (ours) ms", "ours faster by")


def run(backbones: list[str], batches: list[int], repeats: int, device: torch.device, bf16: bool
        ) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """The pruning rows and the fused-vs-explicit attention rows (each pruning row is printed as it comes)."""
    pruning_rows: list[tuple[object, ...]] = []
    explicit_rows: list[tuple[object, ...]] = []
    for backbone in backbones:
        models = {name: (create_model(backbone, pruner, recoverer, schedule).eval(), schedule)
                  for name, (pruner, recoverer, schedule) in variants(backbone).items()}
        gflops = {n: count_flops(m, example_input(m))[0] for n, (m, _) in models.items()}
        for model, _ in models.values():
            model.to(device)
        for batch in batches:
            x = example_input(models["unpruned"][0], batch).to(device)
            fns = {n: (lambda m=m, x=x: forward(m, x, bf16)) for n, (m, _) in models.items()}
            base = models["unpruned"][0]

            def explicit(base=base, x=x):
                with explicit_attention():
                    forward(base, x, bf16)

            fns["unpruned, explicit softmax"] = explicit
            ms = time_round_robin(fns, repeats)
            for name, (_, schedule) in models.items():
                ratio = gflops["unpruned"] / gflops[name]
                speed = ms["unpruned"] / ms[name]
                row = (backbone, batch, name, schedule or "-", f"{gflops[name]:.2f}", f"{ms[name]:.1f}",
                       f"{ratio:.2f}×", f"{speed:.2f}×", f"{speed / ratio:.2f}")
                print_row(row)
                pruning_rows.append(row)
            slow, fast = ms["unpruned, explicit softmax"], ms["unpruned"]
            explicit_rows.append((backbone, batch, f"{slow:.1f}", f"{fast:.1f}", f"{slow / fast:.2f}×"))
    return pruning_rows, explicit_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser, repeats=5, threads=None)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--bf16", action="store_true", help="time under bfloat16 autocast")
    add_out_argument(parser, "core")
    parser.add_argument("--out-attention", default=str(RESULTS_DIR / "attention.md"),
                        help="Markdown file for the attention table (default: benchmarks/results/attention.md; "
                             "'-' prints only)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{torch.get_num_threads()} threads"
    print(f"torch {torch.__version__}, device {device} ({name}), {'bf16 autocast' if args.bf16 else 'fp32'}")
    pruning, attention = run(args.backbones.split(","), [int(b) for b in args.batches.split(",")], args.repeats,
                             device, args.bf16)
    where = f"{name}, {'bf16 autocast' if args.bf16 else 'fp32'}" if device.type == "cuda" else "cpu, fp32"
    footer = ["", f"Medians of {args.repeats} round-robin repeats. "
              + measured_line("benchmarks.core", device=where)]
    write_result([*md_table(PRUNING_HEADER, pruning), *footer], args.out)
    write_result([*md_table(ATTENTION_HEADER, attention), *footer], args.out_attention)


if __name__ == "__main__":
    main()
