"""The claim on a CPU budget: unpruned vs HoT vs H2OT vs TPS+TRI, trained alike, MPJPE next to GFLOPs.

A tiny MixSTE (81 frames, dim 64, depth 4) is trained from scratch on synthetic Human3.6M-format data with
the same seed, data, recipe and number of steps for every configuration, then evaluated on the synthetic
test subjects (S9, S11) with flip augmentation. A few minutes on CPU: this is a sanity check of the trend
(pruning cuts FLOPs at little accuracy cost), not the paper's numbers.

    python -m benchmarks.claim [--backbone mixste] [--epochs 6] [--windows 160] [--minutes 2] [--threads 2]
                               [--only LABEL ...]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from h2ot_core.api import run_trial
from h2ot_core.contracts import TrialSpec
from h2ot_core.names import BACKBONE_INFO

#: label → (pruner, recoverer, schedule) for a 4-block, 81-frame model. HoT keeps 33 of 81 frames after
#: block 0: −40.0% FLOPs, as HoT-MixSTE's −39.6% at full size.
CONFIGS: dict[str, tuple[str, str, str]] = {
    "unpruned": ("none", "none", ""),
    "HoT (TPC+TRA)": ("tpc", "tra", "1:33"),
    "H2OT (TPC+TRA)": ("tpc", "tra", "1:41,3:13"),
    "H2OT (TPS+TRI)": ("tps", "tri", "1:41,3:13"),
    # The two crossings tell which half of TPC+TRA costs accuracy on a minute-scale budget.
    "H2OT (TPC+TRI)": ("tpc", "tri", "1:41,3:13"),
    "H2OT (TPS+TRA)": ("tps", "tra", "1:41,3:13"),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backbone", default="mixste")
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--windows", type=int, default=160, help="training windows per epoch")
    ap.add_argument("--minutes", type=float, default=2.0, help="synthetic data to generate")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--only", action="append", choices=list(CONFIGS), metavar="LABEL",
                    help="run only these configurations (repeatable; the first one is the FLOPs reference)")
    args = ap.parse_args()

    model = {"dim": 64, "depth": 4, "num_heads": 4}
    if "dim_rep" in BACKBONE_INFO[args.backbone].defaults:
        model["dim_rep"] = 64
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for label in args.only or CONFIGS:
            pruner, recoverer, schedule = CONFIGS[label]
            spec = TrialSpec(
                backbone=args.backbone, pruner=pruner, recoverer=recoverer, schedule=schedule, frames=81,
                seed=args.seed, model=model, data={"minutes": args.minutes},
                train={"epochs": args.epochs, "batch_size": 8, "lr": 1e-3, "max_train_windows": args.windows,
                       "train_stride": 27, "num_threads": args.threads},
            )
            t0 = time.perf_counter()
            result = run_trial(spec, workdir=Path(tmp) / spec.trial_key, data_dir=Path(tmp) / "data")
            rows.append((label, schedule or "-", result, time.perf_counter() - t0))

    print(f"{args.backbone} 81 frames, dim 64, depth 4; {args.epochs} epochs x {args.windows} windows; torch "
          f"{torch.__version__}, {args.threads} thread(s)")
    print(f"{'configuration':<16} {'schedule':<10} {'GFLOPs':>8} {'params':>8} {'MPJPE':>8} {'P-MPJPE':>8} "
          f"{'train s':>8} status")
    base = rows[0][2].cost.gflops
    for label, schedule, r, seconds in rows:
        saved = 100 * (1 - r.cost.gflops / base)
        print(f"{label:<16} {schedule:<10} {r.cost.gflops:8.4f} {r.cost.params:8,d} {r.metric('mpjpe') or 0:8.2f} "
              f"{r.metric('p_mpjpe') or 0:8.2f} {seconds:8.1f} {r.status}, {saved:.1f}% fewer FLOPs")

if __name__ == "__main__":
    main()
