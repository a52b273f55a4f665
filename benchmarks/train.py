"""Training throughput per clip against the official training step: ``make bench-train``.

For each backbone at its official size, unpruned, on one random official state_dict (the official key names),
three training steps — forward, the recipe's losses, backward, the recipe's optimiser (AdamW; MHFormer:
Adam with AMSGrad) — timed side by side, interleaved with the order alternating every repeat, medians:

- **official**: the functional official forward the conversion tests prove equal to our converted modules
  (:mod:`benchmarks.official`: the official files' op sequence, token layouts, materialised
  ``softmax(q kᵀ) v`` maps and torch ops), in training mode (batch norms on batch statistics), its
  state_dict's tensors as the parameters, the official losses written out as the official scripts compute
  them (MixSTE: WMPJPE + 0.5 TC + 2 velocity; MotionBERT and MotionAGFormer: MPJPE + 0.5 N-MPJPE +
  20 velocity, the terms their configs weigh 0 left out; MHFormer: MPJPE on every frame), always fp32;
- **ours**: the converted model as ``h2ot`` trains it (``WeightedLoss`` of the recipe on the aligned output,
  the recipe's optimiser from ``OPTIMIZERS``), attention by :func:`h2ot_core.attention.choose_kernel`;
- **ours, fused only**: the same with torch's fused attention kernel everywhere (the kernel rule off): the
  before/after of the rule.

Dropout and stochastic depth are off on both sides (the reference forward has neither), so both compute the
same loss from the same weights and clip (tests/benchmarks/test_train.py checks the first step's).
``--device cuda --dtype bf16 [--compile]`` runs ours under bf16 autocast (``--compile``: each block through
``torch.compile``) on a GPU, the official side still fp32; the batch is then the recipe's (official) batch.

    python -m benchmarks.train [--backbones mixste,motionbert,motionagformer,mhformer] [--batch 2]
                               [--repeats 3] [--threads 2] [--device cpu] [--dtype fp32] [--compile]
                               [--profile] [--clock wall|cpu] [--out benchmarks/results/train.md]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor

from benchmarks.official import OFFICIAL, OFFICIAL_OPS, State, official_ops, official_ref
from benchmarks.output import add_out_argument, md_table, measured_line, print_row, write_result
from benchmarks.precision import CLOCKS
from h2ot_core import attention
from h2ot_core.cost import example_input
from h2ot_core.device import autocast, compile_blocks, synchronize
from h2ot_core.engine.losses import WeightedLoss, align_to_output
from h2ot_core.engine.recipes import OPTIMIZERS
from h2ot_core.layers import DropPath
from h2ot_core.names import BACKBONE_INFO, H36M_JOINT_WEIGHTS

HEADER = ("backbone", "batch", "official ms/step", "ours ms/step", "ours fused-only ms/step",
          "official clips/s", "ours clips/s", "ours vs official", "fused-only vs official")
DTYPES = {"fp32": "fp32", "bf16": "bf16"}

Step = Callable[[], Tensor]


# ---------------------------------------------------------------- the official side

def _batch_norm_train(sd: State, p: str, x: Tensor) -> Tensor:
    return F.batch_norm(x, sd[f"{p}.running_mean"], sd[f"{p}.running_var"], sd[f"{p}.weight"], sd[f"{p}.bias"],
                        training=True, momentum=0.1, eps=1e-5)  # nn.BatchNorm1d/2d in training mode


#: the official files' torch ops, batch norms in training mode (as the official scripts train)
OFFICIAL_TRAINING_OPS = {**OFFICIAL_OPS, "bn": _batch_norm_train}


def _mpjpe(pred: Tensor, target: Tensor) -> Tensor:
    return torch.mean(torch.norm(pred - target, dim=-1))


def _velocity(pred: Tensor, target: Tensor) -> Tensor:
    return torch.mean(torch.norm((pred[:, 1:] - pred[:, :-1]) - (target[:, 1:] - target[:, :-1]), dim=-1))


def _n_mpjpe(pred: Tensor, target: Tensor) -> Tensor:
    norm_pred = torch.mean(torch.sum(pred**2, dim=3, keepdim=True), dim=2, keepdim=True)
    norm_target = torch.mean(torch.sum(target * pred, dim=3, keepdim=True), dim=2, keepdim=True)
    return _mpjpe(norm_target / norm_pred * pred, target)


def _mixste_loss(pred: Tensor, target: Tensor) -> Tensor:
    """HoT's ``main_mixste.py``: WMPJPE + 0.5 · joint-weighted squared frame differences + 2 · velocity error."""
    w = torch.tensor(H36M_JOINT_WEIGHTS)
    wmpjpe = torch.mean(w * torch.norm(pred - target, dim=-1))
    dif = pred[:, 1:] - pred[:, :-1]
    tc = torch.mean((torch.ones_like(dif).permute(0, 1, 3, 2) * w).permute(0, 1, 3, 2) * dif.square())
    return wmpjpe + 0.5 * tc + 2.0 * _velocity(pred, target)


def _motionbert_loss(pred: Tensor, target: Tensor) -> Tensor:
    """MotionBERT's ``train.py`` (and MotionAGFormer's): MPJPE + 0.5 · N-MPJPE + 20 · velocity error."""
    return _mpjpe(pred, target) + 0.5 * _n_mpjpe(pred, target) + 20.0 * _velocity(pred, target)


#: the official scripts' training loss per backbone, ``(pred, target) [B, F, J, 3] -> scalar``
OFFICIAL_LOSS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "mixste": _mixste_loss, "motionbert": _motionbert_loss, "motionagformer": _motionbert_loss,
    "mhformer": _mpjpe}


def _official_optimizer(name: str, params: list[Tensor], lr: float, wd: float) -> torch.optim.Optimizer:
    """The official scripts' optimiser call (``optim.AdamW(...)``; MHFormer ``optim.Adam(..., amsgrad=True)``)."""
    if name == "adam_amsgrad":
        return torch.optim.Adam(params, lr=lr, weight_decay=wd, amsgrad=True)
    return torch.optim.AdamW(params, lr=lr, weight_decay=wd)


# ---------------------------------------------------------------- the three steps

def _clip(model: torch.nn.Module, batch: int) -> tuple[Tensor, Tensor]:
    """A random input ``[B, F, J, C]`` and 3D target ``[B, F, J, 3]`` (root-relative, metres-like scale)."""
    g = torch.Generator().manual_seed(0)
    x = example_input(model, batch)
    y = torch.randn(batch, x.shape[1], x.shape[2], 3, generator=g) * 0.2
    y[:, :, 0] = 0
    return x, y


def steps(backbone: str, batch: int, device: torch.device, precision: str = "fp32", compile_: bool = False,
          size: dict | None = None) -> dict[str, Step]:
    """``{"official", "ours", "ours fused-only"}``: one training step each, returning its loss (detached);
    at the official size unless ``size`` overrides some of its settings (the tests' tiny models).

    Our dropout and stochastic-depth rates are zeroed: the reference forward has neither, so both sides
    compute the same loss (the official recipes train MixSTE and MHFormer with them on, which costs either
    implementation the same few masks).
    """
    info = BACKBONE_INFO[backbone]
    recipe = info.recipe
    sd, convert, reference = OFFICIAL[backbone]({**info.defaults, **(size or {})})
    ours = official_ref.converted_model(convert(sd)).to(device).train()
    for module in ours.modules():
        if isinstance(module, DropPath | torch.nn.Dropout):
            module.p = 0.0
    if compile_:
        compile_blocks(ours)
    x, y = _clip(ours, batch)
    x, y = x.to(device), y.to(device)
    params = {k: v.to(device, copy=True).requires_grad_(v.is_floating_point() and "running_" not in k)
              for k, v in sd.items()}
    official_opt = _official_optimizer(recipe.optimizer, [v for v in params.values() if v.requires_grad],
                                       recipe.lr, recipe.weight_decay)
    loss_official = OFFICIAL_LOSS[backbone]

    def official() -> Tensor:
        # the references build their constants (graphs, weights, indices) with factory calls: on ``device``
        with official_ops(OFFICIAL_TRAINING_OPS), device:
            loss = loss_official(reference(params, x), y)
        official_opt.zero_grad(set_to_none=True)
        loss.backward()
        official_opt.step()
        synchronize(device)
        return loss.detach()

    ours_opt = OPTIMIZERS[recipe.optimizer](ours.parameters(), recipe.lr, recipe.weight_decay)
    loss_fn = WeightedLoss(recipe.loss, H36M_JOINT_WEIGHTS)
    mask = torch.ones(y.shape[:2], dtype=torch.bool, device=device)

    def ours_step() -> Tensor:  # the engine's step (h2ot_core.engine.train.train_one_epoch)
        with autocast(device, precision):
            pred = ours(x).pose3d
        pred = pred.float()
        target, m = align_to_output(pred, y, mask)
        loss = loss_fn(pred, target, m)
        ours_opt.zero_grad(set_to_none=True)
        loss.backward()
        ours_opt.step()
        synchronize(device)
        return loss.detach()

    def fused_only() -> Tensor:
        with all_fused():
            return ours_step()

    return {"official": official, "ours": ours_step, "ours fused-only": fused_only}


@contextlib.contextmanager
def all_fused() -> Iterator[None]:
    """The kernel rule off: fp32 training attention on a CPU takes the fused kernel at every shape."""
    saved = attention.CPU_FP32_TRAIN_EXPLICIT_MAX_KEYS
    attention.CPU_FP32_TRAIN_EXPLICIT_MAX_KEYS = 0
    try:
        yield
    finally:
        attention.CPU_FP32_TRAIN_EXPLICIT_MAX_KEYS = saved


def timed_alternating(fns: dict[str, Step], repeats: int, clock: Callable[[], float] = time.perf_counter
                      ) -> dict[str, float]:
    """Median ms of each step over ``repeats`` rounds, the order reversed every other round (after one
    untimed warm-up round)."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            t0 = clock()
            fns[name]()
            times[name].append((clock() - t0) * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def profile(fns: dict[str, Step], top: int = 12) -> None:
    """Print each step's ``top`` operators by self time (one step under ``torch.profiler``): where a side spends."""
    for name, fn in fns.items():
        with torch.profiler.profile() as prof:
            fn()
        print(f"--- {name}: top {top} operators by self time")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top), flush=True)


def row(backbone: str, batch: int, device: torch.device, precision: str, compile_: bool, repeats: int,
        profiled: bool = False, clock: Callable[[], float] = time.perf_counter) -> tuple[object, ...]:
    fns = steps(backbone, batch, device, precision, compile_)
    if device.type != "cpu" or precision != "fp32":
        del fns["ours fused-only"]  # the rule only differs from the fused kernel in fp32 on a CPU
    ms = timed_alternating(fns, repeats, clock)
    if profiled:
        profile(fns)
    fused = ms.get("ours fused-only")
    return (backbone, batch, f"{ms['official']:.0f}", f"{ms['ours']:.0f}", f"{fused:.0f}" if fused else "-",
            f"{1e3 * batch / ms['official']:.2f}", f"{1e3 * batch / ms['ours']:.2f}",
            f"**{ms['official'] / ms['ours']:.2f}×**", f"{ms['official'] / fused:.2f}×" if fused else "-")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backbones", default="mixste,motionbert,motionagformer,mhformer")
    ap.add_argument("--batch", type=int, default=None,
                    help="clips per step (default: 2 on a CPU, the recipe's official batch on a GPU)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    ap.add_argument("--dtype", choices=sorted(DTYPES), default="fp32", help="ours (the official side stays fp32)")
    ap.add_argument("--compile", action="store_true", help="ours: each block through torch.compile")
    ap.add_argument("--profile", action="store_true", help="also print each side's top operators (one step each)")
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                    help="wall-clock (default) or the process's CPU time (with --threads 1: robust to other jobs)")
    add_out_argument(ap, "train")
    args = ap.parse_args()
    backbones = args.backbones.split(",")
    if unknown := [b for b in backbones if b not in OFFICIAL]:
        ap.error(f"--backbones: no official forward for {', '.join(unknown)}; known: {', '.join(OFFICIAL)}")
    torch.set_num_threads(args.threads)
    # Random weights and clips drift into subnormal floats within a few steps (MotionBERT from its 4th: each
    # step 7.8 -> 62 s of CPU time); x86 computes those ~10x slower, which would time the drift, not the code
    # (and the side that stepped more, ours, would pay). Flushed to zero, every step stays at ~7.7 s.
    torch.set_flush_denormal(True)
    device = torch.device(args.device)
    load = os.getloadavg()
    print(f"torch {torch.__version__}, {args.threads} threads, {device}, ours {args.dtype}"
          f"{' + compile' if args.compile else ''}; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}",
          flush=True)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    rows: list[tuple[object, ...]] = []
    for backbone in backbones:
        batch = args.batch or (BACKBONE_INFO[backbone].recipe.batch_size if device.type == "cuda" else 2)
        rows.append(row(backbone, batch, device, args.dtype, args.compile, args.repeats, args.profile,
                        CLOCKS[args.clock]))
        print_row(rows[-1])
        end = os.getloadavg()  # the file is rewritten after every backbone: a cut-short run keeps its rows
        write_result([f"**Training step per clip, ours ({args.dtype}{' + compile' if args.compile else ''}) "
                      f"against the official step (fp32), official sizes**", "", *md_table(HEADER, rows), "",
                      f"Medians of {args.repeats} repeats ({args.clock} time), order alternating. Load average (1/5/15 min) "
                      f"{load[0]:.1f}/{load[1]:.1f}/{load[2]:.1f} at start, {end[0]:.1f}/{end[1]:.1f}/"
                      f"{end[2]:.1f} at the last row. " + measured_line("benchmarks.train", device=where)], args.out)

if __name__ == "__main__":
    main()
