"""Engine benchmark: training samples/s of the clip-window loader alone vs loader + a tiny model step.

The loader must not be what limits training: it should be at least 10x faster than the smallest model's
training step. Both loops draw shuffled batches the same way (no flip augmentation); samples/s is the median
of ``--repeats`` timed runs of ``--batches`` batches each.

    python -m benchmarks.engine [--backbone mixste] [--frames 27] [--batch-size 16] [--batches 20] [--repeats 3] [--threads 1]
                                [--out benchmarks/results/engine.md]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable

import torch

from benchmarks.output import add_out_argument, md_table, measured_line, write_result
from h2ot_core.data.loading import load_dataset
from h2ot_core.data.windows import ClipWindows
from h2ot_core.engine.losses import WeightedLoss
from h2ot_core.engine.recipes import OPTIMIZERS
from h2ot_core.engine.train import train_one_epoch
from h2ot_core.factory import create_model
from h2ot_core.names import BACKBONE_INFO, dataset_info


def _samples_per_s(run: Callable[[], int], repeats: int) -> float:
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = run()
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="mixste")
    ap.add_argument("--frames", type=int, default=27)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--batches", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--minutes", type=float, default=1.0, help="synthetic data to generate")
    add_out_argument(ap, "engine")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        data = load_dataset("synthetic", tmp, seed=0, minutes=args.minutes)
    pipeline = BACKBONE_INFO[args.backbone].pipeline
    windows = ClipWindows(data.train, args.frames, stride=max(1, args.frames // 3), pipeline=pipeline,
                          joints_left=data.joints_left, joints_right=data.joints_right)
    cap = args.batches * args.batch_size
    gen = torch.Generator().manual_seed(0)

    def loader_only() -> int:
        seen = 0
        for chunk in torch.randperm(len(windows), generator=gen)[:cap].split(args.batch_size):
            windows.get(chunk.numpy())
            seen += len(chunk)
        return seen

    torch.manual_seed(0)
    tiny = {"num_frames": args.frames, "dim": 32, "depth": 2, "num_heads": 2}
    if "dim_rep" in BACKBONE_INFO[args.backbone].defaults:
        tiny["dim_rep"] = 32
    model = create_model(args.backbone, **tiny)
    recipe = BACKBONE_INFO[args.backbone].recipe
    optimizer = OPTIMIZERS[recipe.optimizer](model.parameters(), recipe.lr, recipe.weight_decay)
    loss = WeightedLoss(recipe.loss, dataset_info("h36m").joint_weights)

    def loader_and_step() -> int:
        return train_one_epoch(model, windows, loss, optimizer, batch_size=args.batch_size, generator=gen,
                               flip=False, joints_left=data.joints_left, joints_right=data.joints_right,
                               max_windows=cap).windows

    loader = _samples_per_s(loader_only, args.repeats)
    step = _samples_per_s(loader_and_step, args.repeats)
    print(f"windows: {len(windows)} train clips of {args.frames} frames; batch {args.batch_size}; "
          f"{args.threads} thread(s); median of {args.repeats} runs of {args.batches} batches")
    print(f"loader alone          {loader:12,.0f} samples/s")
    print(f"loader + tiny step    {step:12,.0f} samples/s  ({args.backbone} dim 32, depth 2, forward+backward+step)")
    print(f"ratio                 {loader / step:12.1f} x  (target >= 10x)")
    name = {"mixste": "MixSTE", "motionbert": "MotionBERT", "motionagformer": "MotionAGFormer"}.get(
        args.backbone, args.backbone)
    threads = f"{args.threads} thread{'s' if args.threads != 1 else ''}"
    rows = [(f"tiny {name} ({args.frames} frames, dim 32), batch {args.batch_size}, {threads}: loader alone",
             f"{loader:,.0f} samples/s"),
            ("the same with forward + backward + step",
             f"{step:,.0f} samples/s — the loader is **{loader / step:,.0f}× faster** than the model step "
             f"(target ≥ 10×)")]
    write_result([*md_table(("what", "figure"), rows), "", f"Median of {args.repeats} runs of {args.batches} "
                  f"batches. " + measured_line("benchmarks.engine", threads=args.threads)], args.out)


if __name__ == "__main__":
    main()
