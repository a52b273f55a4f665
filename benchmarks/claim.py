"""The claim on a CPU budget: unpruned vs HoT vs H2OT vs TPS+TRI, trained alike, MPJPE next to GFLOPs.

A tiny MixSTE (81 frames, dim 64, depth 4) is trained from scratch on synthetic Human3.6M-format data with
the same seed, data, recipe and number of steps for every configuration, then evaluated on the synthetic
test subjects (S9, S11) with flip augmentation. A few minutes on CPU: this is a sanity check of the trend
(pruning cuts FLOPs at little accuracy cost), not the paper's numbers.

    python -m benchmarks.claim [--backbone mixste] [--epochs 6] [--windows 160] [--minutes 2] [--threads 2]
                               [--only LABEL ...] [--out benchmarks/results/claim.md]

The table goes to ``benchmarks/results/claim.md`` (``make readme`` copies it into the README). A metric a
trial did not record (it diverged or failed) is shown as ``missing``, never as a number.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

from benchmarks.output import add_out_argument, md_table, measured_line, write_result
from h2ot_core.api import run_trial
from h2ot_core.contracts import TrialResult, TrialSpec
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
    add_out_argument(ap, "claim")
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

    lines = table_lines(rows)
    lines += ["", f"{args.backbone}, 81 frames, dim 64, depth 4; {args.epochs} epochs × {args.windows} windows of "
              f"synthetic data; test on the held-out subjects with flip augmentation. "
              + measured_line("benchmarks.claim", threads=args.threads)]
    write_result(lines, args.out)


def _number(value: float | None, status: str) -> str:
    """A metric as text: ``missing`` (with the status when not complete), never 0."""
    if value is None or not math.isfinite(value):
        return "missing" + (f" ({status})" if status != "complete" else "")
    return f"{value:.2f}"


def _relative(value: float | None, base: float | None) -> str:
    if value is None or base is None or not math.isfinite(value) or not math.isfinite(base) or base == 0:
        return ""
    return f" ({100 * (value / base - 1):+.1f}%)".replace("-", "−")


def table_lines(rows: list[tuple[str, str, TrialResult, float]]) -> list[str]:
    """The claim table: GFLOPs and FLOPs saved vs the first row, MPJPE/P-MPJPE with their change vs it.

    A trial that recorded no metric (diverged, failed) shows ``missing (status)``, and its change is left out.
    """
    base = rows[0][2]
    base_gflops = base.cost.gflops if base.cost else None
    out = []
    for i, (label, schedule, r, seconds) in enumerate(rows):
        pruner, recoverer, _ = CONFIGS[label]
        gflops = r.cost.gflops if r.cost else None
        flops = "–" if i == 0 or gflops is None or not base_gflops else \
            f"{100 * (gflops / base_gflops - 1):+.1f}%".replace("-", "−")
        cells = []
        for name in ("mpjpe", "p_mpjpe"):
            value, ref = r.metric(name), base.metric(name)
            cells.append(_number(value, r.status) + ("" if i == 0 else _relative(value, ref)))
        out.append((label.split(" (")[0], "–" if pruner == "none" else f"{pruner} + {recoverer}",
                    "–" if schedule == "-" else schedule, "missing" if gflops is None else f"{gflops:.4f}", flops,
                    *cells, f"{seconds:.1f}"))
    return md_table(["model", "pruner + recoverer", "schedule", "GFLOPs", "FLOPs", "MPJPE mm", "P-MPJPE mm",
                     "train s"], out)


if __name__ == "__main__":
    main()
