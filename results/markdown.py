"""The one Markdown table emitter, free of the database stack: benchmarks on a bare GPU node (torch and
nothing else of ours installed) write their tables with it too."""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[object]], align: str | Sequence[str] = "l"
                   ) -> str:
    """A GitHub-flavoured Markdown table (no trailing newline); the one Markdown table emitter.

    ``align`` is ``"l"`` or ``"r"`` for every column, or one letter per column (``"llr"``). Cells are
    ``str()``-ed; ``|`` is escaped and newlines become spaces so a cell can never break the table.
    """
    aligns = [align] * len(headers) if align in ("l", "r") else list(align)
    if len(aligns) != len(headers) or set(aligns) - {"l", "r"}:
        raise ValueError(f"align: expected 'l' or 'r' for each of {len(headers)} columns, got {align!r}")

    def line(cells: Iterable[object]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"

    rule = "|" + "|".join("---:" if a == "r" else "---" for a in aligns) + "|"
    return "\n".join([line(headers), rule, *(line(row) for row in rows)])
