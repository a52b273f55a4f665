"""``h2ot checkpoint convert`` (official → native) and ``h2ot predict`` (native → 3D poses)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.commands.core import CompileOpt, DeviceOpt, PrecisionOpt, device_for
from orchestrator.commands.options import at_least_one
from orchestrator.console import err, user_errors

checkpoint_app = typer.Typer(no_args_is_help=True, help="Official HoT/H2OT checkpoints.")


@checkpoint_app.command("convert")
@user_errors
def convert(
    arch: Annotated[str, typer.Argument(help="official architecture (h2ot ls): mixste, hot_mixste, ...")],
    src: Annotated[Path, typer.Argument(help="official state_dict (.pth)")],
    dst: Annotated[Path, typer.Argument(help="native checkpoint to write (.pt)")],
    frames: Annotated[int | None, typer.Option(help="clip length, when it cannot be read from the weights")] = None,
) -> None:
    """Map an official state_dict onto our modules and write a self-describing native checkpoint."""
    from h2ot_core.convert.service import convert_official

    config = convert_official(arch, src, dst, frames=frames)
    err.print(f"wrote {dst}: {config['backbone']} pruner={config['pruner']} recoverer={config['recoverer']} "
              f"schedule={config['schedule'] or '-'} frames={config['model']['num_frames']}")


@user_errors
def predict(
    ckpt: Annotated[str, typer.Argument(help="native checkpoint: a path, or a storage URI (s3://..., gs://...)")],
    input_npy: Annotated[Path, typer.Argument(help="(N, F, J, C) 2D keypoints, screen-normalised: x / W * 2 - 1, "
                                                   "y / W * 2 - H / W for a W x H image (not pixels)")],
    output_npy: Annotated[Path, typer.Argument(help="where to write (N, F, J, 3) (seq2frame: (N, 1, J, 3))")],
    flip: Annotated[bool, typer.Option(help="test-time flip augmentation")] = False,
    batch_size: Annotated[int, typer.Option(callback=at_least_one, help="clips per forward pass")] = 16,
    device: DeviceOpt = "auto",
    precision: PrecisionOpt = "fp32",
    compile: CompileOpt = False,
) -> None:
    """Run a native checkpoint on a NumPy array of 2D keypoints (bf16: 1.4-2.6x faster than fp32 on a CPU
    with AVX512-BF16, 1.7-2.9x with --compile; see benchmarks/results/precision.md)."""
    from h2ot_core.inference import predict_file

    dev = device_for(device, precision, compile=compile)
    from orchestrator.storage import local_copy

    with local_copy(ckpt, "checkpoint") as path:
        shape = predict_file(path, input_npy, output_npy, flip=flip, batch_size=batch_size, device=str(dev),
                             precision=precision, compile=compile)
    err.print(f"wrote {output_npy} {shape}")


def register(app: typer.Typer) -> None:
    app.add_typer(checkpoint_app, name="checkpoint")
    app.command("predict")(predict)
