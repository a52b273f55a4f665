"""``h2ot ls`` and ``h2ot profile``: the registries and what a configuration costs."""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.commands.options import FormatOpt
from orchestrator.console import print_record, print_rows, user_errors


def ls(fmt: FormatOpt = "table") -> None:
    """List the registries: backbones, pruners, recoverers, datasets, official architectures."""
    from h2ot_core.convert import CONVERTERS
    from h2ot_core.names import BACKBONE_INFO, BACKBONES, DATASETS, PRUNERS, RECOVERERS

    rows = []
    for name in BACKBONES.names():
        info = BACKBONE_INFO[name]
        d = info.defaults
        rows.append({"registry": "backbone", "name": name, "notes": f"{info.pipeline}, {d['num_frames']} frames, "
                     f"dim {d['dim']}, depth {d['depth']}, HoT schedule {info.hot_schedule}"})
    for kind, reg in (("pruner", PRUNERS), ("recoverer", RECOVERERS), ("dataset", DATASETS),
                      ("official checkpoint", CONVERTERS)):
        rows += [{"registry": kind, "name": name, "notes": ""} for name in reg.names()]
    print_rows(rows, ["registry", "name", "notes"], fmt)


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
    repeats: Annotated[int, typer.Option(help="timed forward passes (median reported)")] = 10,
    fmt: FormatOpt = "table",
    as_json: Annotated[bool, typer.Option("--json", help="same as --format json: one JSON object")] = False,
) -> None:
    """Params, FLOPs (papers' convention and total) and batch-1 CPU latency of one configuration."""
    from h2ot_core.cost import count_cost
    from h2ot_core.factory import create_model

    model = create_model(backbone, pruner, recoverer, schedule, pipeline=pipeline,
                         num_frames=frames, dim=dim, depth=depth, num_heads=heads)
    cost = count_cost(model, latency=True, repeats=repeats)
    frames_out = model.num_frames if model.pipeline == "seq2seq" else 1
    row = {
        "backbone": backbone, "pruner": pruner, "recoverer": recoverer, "schedule": schedule,
        "pipeline": model.pipeline, "frames": model.num_frames,
        "params": cost.params, "gflops": round(cost.gflops, 4), "gflops_total": round(cost.gflops_total, 4),
        "gflops_per_output_frame": round(cost.gflops / frames_out, 5),
        "latency_ms": round(cost.latency_ms or 0.0, 3), "counter": cost.counter,
    }
    print_record(row, "json" if as_json else fmt)


def register(app: typer.Typer) -> None:
    app.command("ls")(ls)
    app.command("profile")(profile)
