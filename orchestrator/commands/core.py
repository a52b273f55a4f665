"""``h2ot ls`` and ``h2ot profile``: the registries and what a configuration costs."""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.commands.options import FormatOpt
from orchestrator.console import print_record, print_rows, user_errors

#: ``--device`` of train, evaluate, predict and profile
DeviceOpt = Annotated[str, typer.Option("--device", help="auto (the GPU this process was given, else the CPU), "
                                                         "cpu, cuda or cuda:N")]
#: ``--precision`` of evaluate, predict and profile (train: ``train.precision``)
PrecisionOpt = Annotated[str, typer.Option("--precision", help="fp32, bf16 (CPU or GPU) or fp16 (GPU)")]
#: ``--compile`` of predict and profile
CompileOpt = Annotated[bool, typer.Option("--compile", help="torch.compile the backbone's blocks (the first pass "
                                                            "pays for it: seconds to a minute on a CPU)")]


def device_for(device: str, precision: str, source: str = "--precision", *, compile: bool = False
               ):  # -> torch.device
    """The device of ``--device``, checked to run ``precision`` (and ``--compile``): a user error (exit 2)
    before anything is built."""
    from h2ot_core.device import check_compile, check_precision, check_precision_on, resolve_device

    check_precision(precision, source)
    resolved = resolve_device(device)
    check_precision_on(resolved, precision, source)
    if compile:
        check_compile()
    return resolved


def ls(fmt: FormatOpt = "table") -> None:
    """List the registries: backbones, pruners, recoverers, datasets, official architectures."""
    from h2ot_core.convert import CONVERTERS
    from h2ot_core.names import BACKBONE_INFO, BACKBONES, DATASETS, PRUNERS, RECOVERERS

    rows = []
    for name in BACKBONES.names():
        info = BACKBONE_INFO[name]
        d = info.defaults
        rows.append({"registry": "backbone", "name": name, "notes": f"{BACKBONES.description(name)}; "
                     f"{info.pipeline}, {d['num_frames']} frames, dim {d['dim']}, depth {d['depth']}, HoT schedule "
                     f"{info.hot_schedule}"})
    for kind, reg in (("pruner", PRUNERS), ("recoverer", RECOVERERS), ("dataset", DATASETS),
                      ("official checkpoint", CONVERTERS)):
        rows += [{"registry": kind, "name": name, "notes": reg.description(name)} for name in reg.names()]
    print_rows(rows, ["registry", "name", "notes"], fmt, compact=False)


@user_errors
def profile(
    backbone: Annotated[str, typer.Option(help="backbone name (h2ot ls)")],
    pruner: Annotated[str, typer.Option(help="pruner name")] = "none",
    schedule: Annotated[str, typer.Option(help="LAYER:TOKENS[,LAYER:TOKENS...]")] = "",
    recoverer: Annotated[str, typer.Option(help="recoverer name")] = "none",
    frames: Annotated[int | None, typer.Option(help="clip length F (default: the official one)")] = None,
    dim: Annotated[int | None, typer.Option(help="channels C")] = None,
    depth: Annotated[int | None, typer.Option(help="blocks")] = None,
    heads: Annotated[int | None, typer.Option(help="attention heads")] = None,
    pipeline: Annotated[str | None, typer.Option(help="seq2seq or seq2frame")] = None,
    repeats: Annotated[int, typer.Option(min=1, help="timed forward passes (median reported)")] = 10,
    batch: Annotated[int, typer.Option(min=1, help="clips per timed forward pass")] = 1,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "fp32",
    compile: CompileOpt = False,
    latency: Annotated[bool, typer.Option("--latency/--no-latency", help="time the forward pass (--no-latency: "
                                                                       "params and FLOPs only, in seconds even at "
                                                                       "official size)")] = True,
    fmt: FormatOpt = "table",
    as_json: Annotated[bool, typer.Option("--json", help="same as --format json: one JSON object")] = False,
) -> None:
    """Params, FLOPs (papers' convention and total) and the latency of one configuration on a device and
    precision (fp32 and batch 1 by default)."""
    from h2ot_core.cost import count_cost
    from h2ot_core.factory import create_model

    dev = device_for(device, precision, compile=compile)
    model = create_model(backbone, pruner, recoverer, schedule, pipeline=pipeline,
                         num_frames=frames, dim=dim, depth=depth, num_heads=heads).to(dev)
    cost = count_cost(model, latency=latency, repeats=repeats, batch=batch, precision=precision, compile=compile)
    frames_out = model.num_frames if model.pipeline == "seq2seq" else 1
    row = {
        "backbone": backbone, "pruner": pruner, "recoverer": recoverer, "schedule": schedule,
        "pipeline": model.pipeline, "frames": model.num_frames,
        "params": cost.params, "gflops": round(cost.gflops, 4), "gflops_total": round(cost.gflops_total, 4),
        "gflops_per_output_frame": round(cost.gflops / frames_out, 5),
        "latency_ms": None if cost.latency_ms is None else round(cost.latency_ms, 3),
        "latency_batch": cost.latency_batch, "latency_device": cost.latency_device, "precision": precision,
        "compiled": compile, "latency_contended": cost.latency_contended, "counter": cost.counter,
    }
    if not latency:  # nothing was timed: no latency fields at all, rather than empty ones
        row = {k: v for k, v in row.items() if not k.startswith("latency_") and k != "compiled"}
    print_record(row, "json" if as_json else fmt)


def register(app: typer.Typer) -> None:
    app.command("ls")(ls)
    app.command("profile")(profile)
