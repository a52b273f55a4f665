"""Where benchmark figures go: one Markdown file per result table under ``benchmarks/results/``.

Each benchmark prints its table and writes it to ``benchmarks/results/<name>.md`` (``--out`` elsewhere;
``--out -`` only prints). ``make readme`` (:mod:`benchmarks.readme`) copies each file into benchmarks/README.md
between ``<!-- bench:<name> -->`` and ``<!-- /bench:<name> -->``, so the pages show measured files,
never hand-copied numbers. A file is the table, a blank line and one line saying when, how and on what
it was measured.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def add_out_argument(parser: argparse.ArgumentParser, name: str) -> None:
    """``--out PATH`` (default ``benchmarks/results/<name>.md``; ``-`` prints only)."""
    parser.add_argument("--out", default=str(RESULTS_DIR / f"{name}.md"),
                        help=f"Markdown file for the result table (default: benchmarks/results/{name}.md; "
                             f"'-' prints only)")


def add_model_arguments(parser: argparse.ArgumentParser, *, repeats: int, threads: int | None) -> None:
    """The options every official-size model benchmark takes: ``--backbones``, ``--batches`` (comma lists),
    ``--repeats`` and ``--threads`` (``None``: torch's default)."""
    parser.add_argument("--backbones", default="mixste,motionbert,motionagformer,mhformer")
    parser.add_argument("--batches", default="1,8")
    parser.add_argument("--repeats", type=int, default=repeats)
    parser.add_argument("--threads", type=int, default=threads)


def print_row(row: Sequence[object]) -> None:
    """One measured table row, printed as soon as it is measured (a long run shows progress)."""
    print(" | ".join(map(str, row)), flush=True)


def md_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    """A GitHub Markdown table as lines (:func:`results.markdown.markdown_table`, the one emitter)."""
    from results.markdown import markdown_table

    return markdown_table(header, rows).splitlines()


def cpu_name() -> str:
    """``AMD EPYC (AVX2)``: the CPU's model name and the widest vector and matrix instructions torch uses."""
    import torch

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:  # not Linux
        pass
    extras = [name for name, probe in (("AVX512-BF16", torch.cpu._is_avx512_bf16_supported),
                                       ("AMX", torch.cpu._is_amx_tile_supported)) if probe()]
    return f"{model} ({'+'.join([torch.backends.cpu.get_cpu_capability(), *extras])})"


def measured_line(module: str, threads: int | None = None, device: str = "cpu") -> str:
    """``Measured 2026-11-23 with `python -m benchmarks.core ...` (torch 2.13.0+cpu, 2 threads, 2 cores, cpu;
    AMD EPYC (AVX2)).``

    ``module`` is the benchmark's module (``benchmarks.core``); its arguments are this process's.
    """
    import torch

    args, skip = [], False
    for arg in sys.argv[1:]:  # where the table was written is not how it was measured
        if skip or arg.split("=")[0] in ("--out", "--out-attention"):
            skip = not skip and "=" not in arg
            continue
        args.append(arg)
    command = " ".join(["python -m", module, shlex.join(args)]).rstrip()
    threads = threads if threads is not None else torch.get_num_threads()
    return (f"Measured {datetime.date.today().isoformat()} with `{command}` (torch {torch.__version__}, "
            f"{threads} thread{'s' if threads != 1 else ''}, {os.cpu_count()} cores, {device}; "
            f"{cpu_name()}).")


def write_result(lines: Sequence[str], out: str | Path) -> Path | None:
    """Print ``lines`` and write them (plus a final newline) to ``out`` unless it is ``-``; returns the path."""
    text = "\n".join(lines).rstrip("\n") + "\n"
    print(text, end="", flush=True)
    if str(out) == "-":
        return None
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="\n")
    print(f"(written to {path})", flush=True)
    return path
