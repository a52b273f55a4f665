"""Data-loader benchmark: training windows per second from ClipWindows alone (no model).

Generates (or reuses) a synthetic Human3.6M folder, cuts training windows and times shuffled,
flip-augmented batches for a few seconds.

    python -m benchmarks.data_loader [--frames 243] [--stride 81] [--batch 64] [--seconds 3] [--minutes 2]
                                     [--out benchmarks/results/data.md]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.output import add_out_argument, md_table, measured_line, write_result
from h2ot_core.data.loading import load_dataset
from h2ot_core.data.windows import ClipWindows


def samples_per_second(windows: ClipWindows, batch: int, seconds: float) -> tuple[float, int]:
    """Windows delivered per second over at least ``seconds`` of repeated shuffled epochs."""
    generator = torch.Generator().manual_seed(0)
    seen, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for x, *_ in windows.batches(batch, shuffle=True, generator=generator, flip=True):
            seen += x.shape[0]
            if time.perf_counter() - start >= seconds:
                break
    return seen / (time.perf_counter() - start), seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=243)
    parser.add_argument("--stride", type=int, default=81)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--data-dir", type=Path, default=None, help="synthetic folder (default: a temp dir)")
    add_out_argument(parser, "data")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.data_dir or Path(tmp) / "synthetic"
        start = time.perf_counter()
        data = load_dataset("synthetic", folder, minutes=args.minutes)
        load_s = time.perf_counter() - start
        start = time.perf_counter()
        for pipeline, stride in (("seq2seq", args.stride), ("seq2frame", 1)):
            windows = ClipWindows(data.train, args.frames, stride=stride, pipeline=pipeline,
                                  joints_left=data.joints_left, joints_right=data.joints_right)
            build_s = time.perf_counter() - start
            rate, seen = samples_per_second(windows, args.batch, args.seconds)
            print(f"{pipeline:9s} F={args.frames} stride={stride}: {len(windows):,} windows "
                  f"(built in {build_s * 1000:.0f} ms), {rate:,.0f} samples/s "
                  f"({rate * args.frames:,.0f} frames/s) over {seen:,} samples, batch {args.batch}")
            rows.append((f"{pipeline} windows (F={args.frames}, stride {stride}), loader alone",
                         f"{rate:,.0f} samples/s ({rate * args.frames / 1e6:.2f} M frames/s), {len(windows):,} "
                         f"windows built in {build_s * 1000:.0f} ms"))
            start = time.perf_counter()
        print(f"generate+load synthetic ({args.minutes:g} min): {load_s:.2f} s, "
              f"{sum(s.num_frames for s in data.train):,} train frames (all cameras)")
        rows.append((f"generate + load {args.minutes:g} minutes of synthetic motion", f"{load_s:.2f} s"))
    write_result([*md_table(("what", "figure"), rows), "", f"Batch {args.batch}, shuffled and flip-augmented. "
                  + measured_line("benchmarks.data_loader")], args.out)


if __name__ == "__main__":
    main()
