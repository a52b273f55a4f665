"""``h2ot data check`` and ``h2ot data synth``: inspect a dataset folder, write synthetic H36M files."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.commands.options import FormatOpt
from orchestrator.console import err, out, print_rows, user_errors

data_app = typer.Typer(help="Dataset folders: check what they hold, generate synthetic Human3.6M files.",
                       no_args_is_help=True)

#: datasets ``check`` reads from a folder, and the reader options each one takes
CHECKABLE = {"h36m": ("source",), "mpi_inf_3dhp": ()}


@data_app.command("check")
@user_errors
def check(
    data_dir: Annotated[Path, typer.Argument(help="folder with the dataset's .npz files")],
    dataset: Annotated[str, typer.Option(help="h36m or mpi_inf_3dhp")] = "h36m",
    source: Annotated[str, typer.Option(help="2D source for h36m: cpn or gt")] = "cpn",
    fmt: FormatOpt = "table",
) -> None:
    """Read a dataset folder with the real reader and print its subjects, actions and frames."""
    from h2ot_core.data.loading import load_dataset
    from h2ot_core.errors import ConfigError
    from h2ot_core.registry import unknown_message

    if dataset not in CHECKABLE:
        raise ConfigError(unknown_message("dataset", dataset, list(CHECKABLE)))
    options = {"source": source} if "source" in CHECKABLE[dataset] else {}
    data = load_dataset(dataset, data_dir, **options)
    rows = []
    for split, sequences in (("train", data.train), ("test", data.test)):
        by_subject: dict[str, list] = defaultdict(list)
        for seq in sequences:
            by_subject[seq.subject].append(seq)
        for subject, seqs in by_subject.items():
            rows.append({"split": split, "subject": subject, "actions": len({s.action for s in seqs}),
                         "sequences": len(seqs), "frames": sum(s.num_frames for s in seqs),
                         "valid frames": sum(s.num_frames if s.valid is None else int(s.valid.sum()) for s in seqs)})
    title = (f"{dataset} in {data_dir} (2D: {options.get('source', 'file')}, {data.num_joints} joints, "
             f"root {data.root_joint}, fingerprint {data.fingerprint})")
    print_rows(rows, list(rows[0]) if rows else ["split", "subject"], fmt, title=title)


@data_app.command("synth")
@user_errors
def synth(
    out_dir: Annotated[Path, typer.Argument(help="folder to write the VideoPose3D-layout files into")],
    seed: Annotated[int, typer.Option(help="random seed (same seed, same files)")] = 0,
    minutes: Annotated[float, typer.Option(help="total length over all subjects and actions, per camera")] = 2.0,
) -> None:
    """Write synthetic Human3.6M files (3D, GT 2D, CPN-like 2D, per-frame labels) into OUT_DIR."""
    from h2ot_core.data.synth import write_synthetic

    folder = write_synthetic(out_dir, seed=seed, minutes=minutes)
    err.print(f"synthetic Human3.6M (seed {seed}, {minutes:g} min) in {folder}")
    for path in sorted(folder.iterdir()):
        out.print(f"{path.name}\t{path.stat().st_size:,} bytes", highlight=False)


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
