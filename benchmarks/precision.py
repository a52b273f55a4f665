"""Precision benchmark: bf16 against fp32 inference and training, side by side, on one device.

Sections (each table is rewritten into the result file as soon as it is measured):

1. GEMM peak: a large fp32 and bf16 matmul, the machine's reference for the achieved GFLOP/s below.
2. Inference: every backbone unpruned, HoT and H2OT at its official size, at each ``--batches``: fp32 and bf16
   milliseconds, the speed-up (target >= 1.8x on the CPU), the same with the blocks compiled (``--compile``;
   its one-off compile seconds beside it, from the inductor cache when warm), output frames per second as
   the papers count FPS (B·F/t seq2seq, B/t seq2frame), achieved GFLOP/s of both (all matmuls, ``gflops_total``) and the bf16
   output's relative difference from fp32 on the same weights (target <= 2e-2), on a synthetic motion clip
   (real motion, not noise: frame selection on noise is a coin toss between near-equal frames). A pruned
   model's difference is given twice: with its own bf16 frame selection, and with the fp32 selection
   replayed (the arithmetic alone), next to how many kept frames the two selections do not share.
3. Accuracy: a tiny MixSTE-HoT trained on synthetic data, evaluated in fp32 and bf16 (target: MPJPE within
   0.5 mm), and the same trial trained in bf16.
4. Training: one optimiser step (forward, backward, AdamW) in fp32 and under bf16 autocast, official sizes at
   batch 2 and the demo size (target >= 1.5x).
5. How to run bf16 (official-size unpruned models, batch 1): fp32, plain autocast, bf16 Linear/Conv weights
   under autocast (what ``h2ot predict/profile/evaluate --precision bf16`` use), and the whole model in bf16.

All variants of a row group are timed interleaved, round-robin, so machine noise hits them alike; figures
are medians of ``--repeats`` passes after one warm-up (batches above 1: no warm-up, the batch-1 passes
warmed the code). On CUDA every pass ends with a synchronisation.

    python -m benchmarks.precision [--backbones mixste,motionbert,motionagformer,mhformer] [--batches 1,8]
                                   [--repeats 3] [--threads 2] [--device cpu] [--sections gemm,infer,acc,train,modes]
                                   [--no-compile]
                                   [--out benchmarks/results/precision.md]
"""

from __future__ import annotations

import argparse
import copy
import functools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import torch

from benchmarks.core import variants
from benchmarks.output import (
    add_model_arguments,
    add_out_argument,
    md_table,
    measured_line,
    print_row,
    write_result,
)
from h2ot_core.cost import count_flops, example_input
from h2ot_core.data.base import PoseSequence
from h2ot_core.device import autocast, compile_blocks, cpu_bf16_refusal, inference_model, synchronize
from h2ot_core.factory import create_model
from h2ot_core.names import BACKBONE_INFO

SECTIONS = ("gemm", "infer", "acc", "train", "modes")


#: what a pass's time is read from: wall-clock, or this process's CPU time (all its threads): on a machine
#: shared with other jobs, one thread's CPU time is the work done, where wall-clock also counts the waits
CLOCKS: dict[str, Callable[[], float]] = {"wall": time.perf_counter, "cpu": time.process_time}


def timed_round_robin(fns: dict[str, Callable[[], object]], repeats: int, device: torch.device,
                      warmup: bool = True, clock: Callable[[], float] = time.perf_counter) -> dict[str, float]:
    """Median milliseconds of each function, interleaved; every pass waits for the device."""
    def once(fn: Callable[[], object]) -> float:
        t0 = clock()
        fn()
        synchronize(device)
        return (clock() - t0) * 1e3

    if warmup:
        for fn in fns.values():
            once(fn)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(once(fn))
    return {k: statistics.median(v) for k, v in times.items()}


def gemm_peak(device: torch.device, repeats: int) -> dict[str, float]:
    """GFLOP/s of an n x n matmul in fp32 and bf16 (n = 4096 on a GPU, 2048 on a CPU)."""
    n = 4096 if device.type == "cuda" else 2048
    out = {}
    for name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
        ms = timed_round_robin({name: lambda a=a, b=b: a @ b}, max(repeats, 5), device)[name]
        out[name] = 2 * n**3 / (ms / 1e3) / 1e9
    return out


def _fps(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.2f}"


def rel_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


@functools.cache
def _longest_test_sequence() -> PoseSequence:
    """The longest test sequence of 3 minutes of synthetic data (read once per run)."""
    from h2ot_core.data.synthetic import load_synthetic

    return max(load_synthetic(minutes=3.0).test, key=lambda s: s.num_frames)


def motion_clip(model: torch.nn.Module) -> torch.Tensor:
    """``[1, F, J, C]`` 2D keypoints of the longest synthetic test sequence (confidence channel: 1.0)."""
    bb = model.backbone
    seq = _longest_test_sequence()
    if seq.num_frames < bb.num_frames:
        raise ValueError(f"the longest synthetic test sequence has {seq.num_frames} < {bb.num_frames} frames")
    x = torch.from_numpy(seq.pose2d[: bb.num_frames, :, :2]).unsqueeze(0)
    extra = bb.in_chans - x.shape[-1]
    return torch.cat((x, torch.ones(*x.shape[:-1], extra)), dim=-1) if extra else x


def output_difference(model: torch.nn.Module, fast: torch.nn.Module, device: torch.device) -> tuple[str, str, str]:
    """bf16 vs fp32 on a motion clip: (difference with bf16's own selection, with fp32's selection replayed,
    kept frames not shared); the last two are ``-`` for an unpruned model."""
    x = motion_clip(model).to(device)
    ref = model(x)
    with autocast(device, "bf16"):
        own = fast(x)
        replayed = fast(x, replay=ref.stage_positions) if ref.stage_positions else None
    if replayed is None:
        return f"{rel_diff(own.pose3d, ref.pose3d):.1e}", "-", "-"
    a, b = set(ref.kept_index[0].tolist()), set(own.kept_index[0].tolist())
    return (f"{rel_diff(own.pose3d, ref.pose3d):.1e}", f"{rel_diff(replayed.pose3d, ref.pose3d):.1e}",
            f"{len(a - b)} of {len(a)}")


class Report:
    """The result file, rewritten after every section so a cut-short run keeps what it measured."""

    def __init__(self, out: str, device_text: str):
        self.out, self.device_text = out, device_text
        self.parts: list[list[str]] = []

    def add(self, title: str, lines: list[str]) -> None:
        self.parts.append([f"**{title}**", "", *lines, ""])
        body = [line for part in self.parts for line in part]
        write_result([*body, measured_line("benchmarks.precision", device=self.device_text)], self.out)


@torch.inference_mode()
def _modes_of(backbone: str, device: torch.device, repeats: int) -> list[tuple[object, ...]]:
    torch.manual_seed(0)
    model = create_model(backbone).to(device).eval()
    x = example_input(model, 1).to(device)
    weights = inference_model(model, "bf16", copy_model=True)
    pure = copy.deepcopy(model).to(torch.bfloat16)

    def under(m: torch.nn.Module) -> Callable[[], torch.Tensor]:
        def run() -> torch.Tensor:
            with autocast(device, "bf16"):
                return m(x).pose3d
        return run

    fns = {"fp32": lambda: model(x).pose3d, "autocast": under(model), "bf16 weights + autocast": under(weights),
           "all bf16": lambda: pure(x.to(torch.bfloat16)).pose3d}
    ref = fns["fp32"]()
    errs = {k: rel_diff(f(), ref) for k, f in fns.items()}
    ms = timed_round_robin(fns, repeats, device)
    rows = [(backbone, k, f"{ms[k]:.1f}", f"{ms['fp32'] / ms[k]:.2f}×", f"{errs[k]:.1e}") for k in fns]
    for row in rows:
        print_row(row)
    return rows


def modes(backbones: list[str], device: torch.device, repeats: int) -> list[tuple[object, ...]]:
    return [row for backbone in backbones for row in _modes_of(backbone, device, repeats)]


def _infer_variant(backbone: str, name: str, batches: list[int], device: torch.device, repeats: int,
                   compile_: bool) -> list[tuple[object, ...]]:
    pruner, recoverer, schedule = variants(backbone)[name]
    torch.manual_seed(0)
    model = create_model(backbone, pruner, recoverer, schedule).eval()
    total = count_flops(model, example_input(model))[1]  # not under inference_mode: the counter's hooks need autograd
    model.to(device)
    fast = inference_model(model, "bf16", copy_model=True)
    compiled = None
    if compile_:
        compiled = inference_model(model, "bf16", copy_model=True)
        compile_blocks(compiled)
    with torch.inference_mode():
        return _time_variant(backbone, name, schedule, model, (fast, compiled), total, batches, device, repeats)


def _time_variant(backbone: str, name: str, schedule: str, model: torch.nn.Module,
                  bf16_models: tuple[torch.nn.Module, torch.nn.Module | None], total: float, batches: list[int],
                  device: torch.device, repeats: int) -> list[tuple[object, ...]]:
    frames_out = model.num_frames if BACKBONE_INFO[backbone].pipeline == "seq2seq" else 1
    fast, compiled = bf16_models
    rows = []
    for batch in batches:
        torch.manual_seed(1)
        x = example_input(model, batch).to(device)

        def under_bf16(m: torch.nn.Module, x: torch.Tensor = x) -> Callable[[], torch.Tensor]:
            def run() -> torch.Tensor:
                with autocast(device, "bf16"):
                    return m(x).pose3d
            return run

        fns = {"fp32": lambda x=x: model(x).pose3d, "bf16": under_bf16(fast)}
        compile_s = None
        if compiled is not None:
            fns["compiled"] = under_bf16(compiled)
            t0 = time.perf_counter()
            fns["compiled"]()  # compiles this batch's graphs (not timed below)
            compile_s = time.perf_counter() - t0
        diff = output_difference(model, fast, device) if batch == batches[0] else ("", "", "")
        ms = timed_round_robin(fns, repeats, device, warmup=batch == batches[0])
        gfs = {k: total * batch / (v / 1e3) for k, v in ms.items()}
        compiled_cells = ((f"{ms['compiled']:.1f}", f"**{ms['fp32'] / ms['compiled']:.2f}×**", f"{compile_s:.0f}")
                          if compile_s is not None else ("-", "-", "-"))
        row = (backbone, name, schedule or "-", batch, f"{ms['fp32']:.1f}", f"{ms['bf16']:.1f}",
               f"**{ms['fp32'] / ms['bf16']:.2f}×**", *compiled_cells,
               _fps(batch * frames_out / (ms['fp32'] / 1e3)), _fps(batch * frames_out / (ms['bf16'] / 1e3)),
               f"{gfs['fp32']:.0f}", f"{gfs['bf16']:.0f}", *diff)
        rows.append(row)
        print_row(row)
    return rows


def inference(backbones: list[str], batches: list[int], device: torch.device, repeats: int, compile_: bool = True
              ) -> list[tuple[object, ...]]:
    return [row for backbone in backbones for name in variants(backbone)
            for row in _infer_variant(backbone, name, batches, device, repeats, compile_)]


def accuracy(device: torch.device) -> list[tuple[object, ...]]:
    """A tiny MixSTE-HoT trained in fp32 (and in bf16), evaluated in fp32 and bf16 on the same weights."""
    from h2ot_core.api import evaluate_checkpoint, run_trial
    from h2ot_core.contracts import TrialSpec

    spec = TrialSpec(backbone="mixste", pruner="tpc", recoverer="tra", schedule="1:9", frames=27,
                     dataset="synthetic", seed=0, model={"dim": 48, "depth": 3, "num_heads": 4},
                     data={"minutes": 1.0},
                     train={"epochs": 4, "batch_size": 8, "lr": 1e-3, "max_train_windows": 256,
                            "max_test_windows": 128, "latency": False})
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        results = {}
        for precision in ("fp32", "bf16"):
            s = replace(spec, train={**spec.train, "precision": precision})
            results[precision] = run_trial(s, workdir=Path(tmp) / precision, data_dir=data, device=device)
        ckpt = results["fp32"].checkpoint_uri
        ev = {p: evaluate_checkpoint(ckpt, "synthetic", data_dir=data, data_options={"minutes": 1.0, "seed": 0},
                                     flip=True, batch_size=32, device=device, precision=p)
              for p in ("fp32", "bf16")}
        a, b = ev["fp32"].metrics["mpjpe"]["avg"], ev["bf16"].metrics["mpjpe"]["avg"]
        rows.append(("fp32-trained model, evaluated in bf16 vs fp32 (same weights)", f"{a:.2f}", f"{b:.2f}",
                     f"**{b - a:+.3f}**"))
        a, b = results["fp32"].metric("mpjpe"), results["bf16"].metric("mpjpe")
        rows.append(("the same trial trained (and evaluated) in bf16 vs fp32", f"{a:.2f}", f"{b:.2f}", f"{b - a:+.3f}"))
    for row in rows:
        print_row(row)
    return rows


def _train_step_ms(backbone: str, size: dict, batch: int, device: torch.device, repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    model = create_model(backbone, **size).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), 1e-4)
    x = example_input(model, batch).to(device)
    frames_out = model.num_frames if model.pipeline == "seq2seq" else 1
    y = torch.randn(batch, frames_out, model.backbone.num_joints, 3, device=device)

    def step(precision: str) -> None:
        with autocast(device, precision):
            pred = model(x).pose3d
        loss = (pred.float() - y).norm(dim=-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return timed_round_robin({"fp32": lambda: step("fp32"), "bf16": lambda: step("bf16")}, repeats, device)


def training(backbones: list[str], device: torch.device, repeats: int) -> list[tuple[object, ...]]:
    """One AdamW step (forward, MPJPE loss, backward, step) in fp32 vs bf16 autocast."""
    configs = [(f"{b} (official size)", b, {}, 2, repeats) for b in backbones]
    configs.append(("mixste demo size (27 frames, dim 48, depth 3)", "mixste",
                    {"num_frames": 27, "dim": 48, "depth": 3, "num_heads": 4}, 8, max(repeats, 15)))
    rows = []
    for label, backbone, size, batch, n in configs:
        ms = _train_step_ms(backbone, size, batch, device, n)
        row = (label, batch, f"{ms['fp32']:.1f}", f"{ms['bf16']:.1f}", f"**{ms['fp32'] / ms['bf16']:.2f}×**")
        rows.append(row)
        print_row(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(ap, repeats=3, threads=2)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--sections", default=",".join(SECTIONS), help=f"any of {', '.join(SECTIONS)}")
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True,
                    help="also time bf16 with the blocks compiled (--no-compile: its columns read '-'; on 2 "
                         "CPU cores a cold compile costs 4-42 s per variant, on an H200 node about 1 s)")
    add_out_argument(ap, "precision")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    backbones = args.backbones.split(",")
    sections = args.sections.split(",")
    if unknown := [s for s in sections if s not in SECTIONS]:
        ap.error(f"--sections: unknown {', '.join(unknown)}; known: {', '.join(SECTIONS)}")
    if device.type == "cpu" and (refusal := cpu_bf16_refusal("benchmarks.precision")) is not None:
        print(f"{refusal} (fp32 against the official code: make bench-official)", file=sys.stderr)
        raise SystemExit(2)
    load = os.getloadavg()[0]
    where = (torch.cuda.get_device_name(device) if device.type == "cuda"
             else f"cpu, 1-min load {load:.1f} at start")
    print(f"torch {torch.__version__}, {where}", flush=True)
    report = Report(args.out, where)

    if "gemm" in sections:
        peak = gemm_peak(device, args.repeats)
        report.add("GEMM peak (the machine's reference)", md_table(
            ("precision", "GFLOP/s"), [(k, f"{v:.0f}") for k, v in peak.items()]))
    if "infer" in sections:
        header = ("backbone", "variant", "schedule", "batch", "fp32 ms", "bf16 ms", "bf16 speed-up",
                  "bf16 + compile ms", "bf16 + compile speed-up", "compile s", "fp32 FPS", "bf16 FPS",
                  "fp32 GFLOP/s", "bf16 GFLOP/s", "bf16 vs fp32 output", "same selection", "kept frames not shared")
        rows = inference(backbones, [int(b) for b in args.batches.split(",")], device, args.repeats,
                         args.compile)
        report.add("Inference, bf16 (Linear/Conv weights in bf16 under autocast) vs fp32", md_table(header, rows))
    if "acc" in sections:
        report.add("Accuracy of bf16 on a trained tiny model (MPJPE, mm)", md_table(
            ("comparison", "fp32", "bf16", "difference"), accuracy(device)))
    if "train" in sections:
        report.add("Training step, bf16 autocast vs fp32 (forward + backward + AdamW)", md_table(
            ("model", "batch", "fp32 ms", "bf16 ms", "bf16 speed-up"), training(backbones, device, args.repeats)))
    if "modes" in sections:
        report.add("Ways to run bf16: official-size unpruned models, batch 1 (ms; difference from fp32)", md_table(
            ("backbone", "mode", "ms", "vs fp32", "relative difference"), modes(backbones, device, args.repeats)))


if __name__ == "__main__":
    main()
