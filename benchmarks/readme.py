"""Copy the measured result files into README.md and benchmarks/README.md: ``make readme``.

Every block ``<!-- bench:NAME -->`` ... ``<!-- /bench:NAME -->`` in those files is replaced by the content
of ``benchmarks/results/NAME.md`` (written by ``make bench`` / ``make claim``), or, for a block in
:data:`GENERATED`, by what the code declares (the settings table of :mod:`h2ot_core.environment`, the recipe table of
:mod:`h2ot_core.recipes`). Running it twice changes
nothing the second time. A block whose file is missing, or a marker without its closing marker, is an
error naming what to run or fix; nothing is written then.

    python -m benchmarks.readme [--readme FILE ...] [--results benchmarks/results] [--check]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

from benchmarks.output import RESULTS_DIR
from h2ot_core.environment import markdown_table
from h2ot_core.recipes import markdown_table as recipes_table

README = Path(__file__).resolve().parent.parent / "README.md"
#: the benchmark tables' page, linked from the README's performance summary
BENCHMARKS_README = Path(__file__).resolve().parent / "README.md"
#: the files ``make readme`` fills, in order
TARGETS = (README, BENCHMARKS_README)
OPEN = re.compile(r"<!-- bench:([\w.-]+) -->")
#: the command that writes each result file, for error messages
PRODUCERS = {"core": "make bench-core", "attention": "make bench-core", "claim": "make claim",
             "claim_long": "python -m benchmarks.claim --epochs 12 --windows 320 --out benchmarks/results/claim_long.md",
             "data": "make bench-data", "engine": "make bench-engine", "results": "make bench-results", "web": "make bench-web",
             "orchestration": "make bench-orchestration", "search": "make bench-search", "precision": "make bench-precision", "official": "make bench-official",
             "train": "make bench-train", "attention_kernels": "make bench-attention",
             "train_cuda_bf16": "make bench-gpu (on a GPU node)",
             "precision_gpu": "make bench-gpu (on a GPU node)",
             "precision_zen5": "python -m benchmarks.precision --repeats 5 --out benchmarks/results/precision_zen5.md "
                               "(on a Zen 5 EPYC)",
             "precision_gpu_compile": "python -m benchmarks.precision --device cuda --backbones mixste,motionagformer "
                                      "--batches 1,32 --sections infer --out benchmarks/results/precision_gpu_compile.md",
             "core_cuda": "python -m benchmarks.core --device cuda --batches 1,32 --repeats 10 --threads 4 "
                          "--out benchmarks/results/core_cuda.md",
             "core_cuda_bf16": "python -m benchmarks.core --device cuda --bf16 --batches 1,32 --repeats 10 --threads 4 "
                               "--out benchmarks/results/core_cuda_bf16.md"}


#: blocks generated from the code rather than measured: name -> the function writing the block
GENERATED: dict[str, Callable[[], str]] = {"settings": markdown_table, "recipes": recipes_table}


class ReadmeError(Exception):
    """A block that cannot be filled: its file is missing or its closing marker is."""


def fill(text: str, results: Path) -> tuple[str, list[str]]:
    """``text`` with every bench block replaced by its file; returns ``(new text, block names)``."""
    out: list[str] = []
    names: list[str] = []
    pos = 0
    for match in OPEN.finditer(text):
        if match.start() < pos:  # a marker inside a block already replaced
            continue
        name = match.group(1)
        close = f"<!-- /bench:{name} -->"
        end = text.find(close, match.end())
        if end < 0:
            line = text.count("\n", 0, match.start()) + 1
            raise ReadmeError(f"line {line}: <!-- bench:{name} --> has no closing {close}")
        source = results / f"{name}.md"
        if name in GENERATED:
            body = GENERATED[name]().strip("\n")
        elif source.is_file():
            body = source.read_text(encoding="utf-8").strip("\n")
        else:
            hint = PRODUCERS.get(name, f"the benchmark that writes {name}.md")
            raise ReadmeError(f"{source}: missing, so README block {name!r} cannot be filled; run: {hint}")
        out += [text[pos:match.end()], "\n", body, "\n", close]
        pos = end + len(close)
        names.append(name)
    out.append(text[pos:])
    return "".join(out), names


def update(path: Path, results: Path, check: bool) -> int:
    """Fill the blocks of one file (or only compare with ``check``); 0 when it is (now) up to date."""
    text = path.read_text(encoding="utf-8")
    try:
        new, names = fill(text, results)
    except ReadmeError as exc:
        print(f"make readme: {exc}", file=sys.stderr)
        return 1
    if not names:
        print(f"make readme: {path} has no <!-- bench:NAME --> blocks", file=sys.stderr)
        return 1
    if new == text:
        print(f"{path}: up to date ({len(names)} blocks: {', '.join(names)})")
        return 0
    if check:
        print(f"{path}: stale; run make readme", file=sys.stderr)
        return 1
    path.write_text(new, encoding="utf-8", newline="\n")
    print(f"{path}: updated {len(names)} blocks ({', '.join(names)})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--readme", type=Path, action="append",
                        help="a file to fill (repeatable; default: README.md and benchmarks/README.md)")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR)
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is stale")
    args = parser.parse_args(argv)
    return max(update(path, args.results, args.check) for path in (args.readme or TARGETS))


if __name__ == "__main__":
    sys.exit(main())
