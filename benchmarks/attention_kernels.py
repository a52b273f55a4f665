"""Fused against explicit attention per call shape, the measurement behind :func:`h2ot_core.attention.choose_kernel`.

Two tables, fp32 by default, each call timed forward only (inference, no gradients) and forward + backward
(training), both kernels interleaved round-robin, medians of ``--repeats`` samples of at least 100 ms each
(a short call is looped):

1. **a sweep** over head width (8, 16, 32, 39, 64) and number of keys (17 joints, 34, 81, 243, 351 frames) at
   8 heads and about 8k query tokens per call (one official-size 243-frame, 17-joint clip pair: batch 2);
2. **the backbones' own calls** at their official sizes and ``--batch``, recorded from a forward pass.

The last column says which kernel the rule picks in training, so a rule that disagrees with the table shows.

    python -m benchmarks.attention_kernels [--repeats 5] [--threads 2] [--batch 2] [--device cpu]
                                           [--dtype fp32|bf16] [--tables sweep,backbones] [--clock wall|cpu]
                                           [--out benchmarks/results/attention_kernels.md]
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable

import torch

from benchmarks.output import add_out_argument, md_table, measured_line, print_row, write_result
from benchmarks.precision import CLOCKS, timed_round_robin
from h2ot_core import attention
from h2ot_core.attention import choose_kernel, explicit_attention, fused_attention
from h2ot_core.cost import example_input
from h2ot_core.device import synchronize
from h2ot_core.factory import create_model

HEADER = ("calls", "q [N, H, Tq, d]", "keys", "infer fused ms", "infer explicit ms", "infer explicit speed-up",
          "train fused ms", "train explicit ms", "train explicit speed-up", "rule picks (train)")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
WIDTHS = (8, 16, 32, 39, 64)
KEYS = (17, 34, 81, 243, 351)
QUERY_TOKENS = 2 * 243 * 17
HEADS = 8

Shape = tuple[int, int, int, int, int]  # N, H, Tq, d, Tk


def sweep_shapes(keys: tuple[int, ...] = KEYS) -> list[tuple[str, Shape]]:
    return [(f"sweep d={d}", (max(1, round(QUERY_TOKENS / t)), HEADS, t, d, t)) for d in WIDTHS for t in keys]


def backbone_shapes(backbones: list[str], batch: int) -> list[tuple[str, Shape]]:
    """Each distinct attention call of each backbone at its official size, recorded from one no-grad forward."""
    found: list[tuple[str, Shape]] = []
    real = attention.choose_kernel
    for backbone in backbones:
        def spy(q: torch.Tensor, k: torch.Tensor, backbone: str = backbone) -> attention.Kernel:
            shape = (*q.shape, k.shape[-2])
            if (backbone, shape) not in found:
                found.append((backbone, shape))
            return real(q, k)

        model = create_model(backbone, "none", "none", "").eval()
        attention.choose_kernel = spy
        try:
            with torch.no_grad():
                model(example_input(model, batch))
        finally:
            attention.choose_kernel = real
    return found


def _timers(shape: Shape, device: torch.device, dtype: torch.dtype) -> dict[str, Callable[[], object]]:
    n, h, tq, d, tk = shape
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(n, h, t, d, generator=g).to(device, dtype).requires_grad_() for t in (tq, tk, tk))
    grad = torch.randn(n, h, tq, d, generator=g).to(device, dtype)
    fns: dict[str, Callable[[], object]] = {}
    for name, kernel in (("fused", fused_attention), ("explicit", explicit_attention)):
        def infer(kernel=kernel) -> None:
            with torch.no_grad():
                kernel(q, k, v)

        def train(kernel=kernel) -> None:
            q.grad = k.grad = v.grad = None
            kernel(q, k, v).backward(grad)

        fns[f"infer {name}"], fns[f"train {name}"] = infer, train
    return fns


def _looped(fn: Callable[[], object], device: torch.device, clock: Callable[[], float],
            min_ms: float = 100.0) -> Callable[[], object]:
    """``fn`` repeated enough times that one timed sample lasts at least ``min_ms`` (a short call's time on a
    shared machine is mostly thread wake-ups); time it and divide by :attr:`calls`."""
    t0 = clock()
    fn()
    synchronize(device)
    calls = max(1, math.ceil(min_ms / max((clock() - t0) * 1e3, 1e-3)))

    def run() -> None:
        for _ in range(calls):
            fn()

    run.calls = calls  # type: ignore[attr-defined]
    return run


def row(label: str, shape: Shape, device: torch.device, dtype: torch.dtype, repeats: int,
        clock: Callable[[], float]) -> tuple[object, ...]:
    looped = {name: _looped(fn, device, clock) for name, fn in _timers(shape, device, dtype).items()}
    ms = {name: t / looped[name].calls
          for name, t in timed_round_robin(looped, repeats, device, clock=clock).items()}
    n, h, tq, d, tk = shape
    probe_q = torch.empty(n, h, tq, d, dtype=dtype, device=device, requires_grad=True)
    picks = choose_kernel(probe_q, torch.empty(n, h, tk, d, dtype=dtype, device=device))
    return (label, f"[{n}, {h}, {tq}, {d}]", tk,
            f"{ms['infer fused']:.2f}", f"{ms['infer explicit']:.2f}",
            f"{ms['infer fused'] / ms['infer explicit']:.2f}×",
            f"{ms['train fused']:.2f}", f"{ms['train explicit']:.2f}",
            f"**{ms['train fused'] / ms['train explicit']:.2f}×**", picks.value)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbones", default="mixste,motionbert,motionagformer,mhformer")
    ap.add_argument("--batch", type=int, default=2, help="clips per call for the backbones' shapes")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="fp32")
    ap.add_argument("--tables", default="sweep,backbones", help="which tables: sweep, backbones or both")
    ap.add_argument("--keys", default=",".join(map(str, KEYS)), help="the sweep's numbers of keys")
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                    help="wall-clock (default) or the process's CPU time (with --threads 1: robust to other jobs)")
    add_out_argument(ap, "attention_kernels")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    load = os.getloadavg()[0]
    print(f"torch {torch.__version__}, {args.threads} threads, {device}, {args.dtype}, 1-min load {load:.1f}",
          flush=True)
    tables = []
    keys = tuple(int(t) for t in args.keys.split(","))
    chosen = {"sweep": ("Sweep: 8 heads, ~8k query tokens per call", lambda: sweep_shapes(keys)),
              "backbones": (f"The backbones' calls at official size, batch {args.batch}",
                            lambda: backbone_shapes(args.backbones.split(","), args.batch))}
    for name in args.tables.split(","):
        title, shapes_of = chosen[name]
        shapes = shapes_of()
        rows = []
        for label, shape in shapes:
            rows.append(row(label, shape, device, dtype, args.repeats, CLOCKS[args.clock]))
            print_row(rows[-1])
        tables += [f"**{title} ({args.dtype}; speed-up = fused ms / explicit ms, above 1 = explicit faster)**", "",
                   *md_table(HEADER, rows), ""]
    write_result([*tables, f"Medians of {args.repeats} round-robin repeats ({args.clock} time). "
                  + measured_line("benchmarks.attention_kernels",
                                  device=f"{device}, 1-min load {load:.1f} at start")], args.out)


if __name__ == "__main__":
    main()
