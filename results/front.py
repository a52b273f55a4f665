"""A campaign's Pareto front: which trials no other beats in both accuracy and cost, the hypervolume they
dominate, and the files ``h2ot pareto`` writes (Markdown, LaTeX, CSV and the plot).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from sqlalchemy import Engine

from h2ot_core.contracts import TrialStatus, lower_is_better
from results.errors import ResultsError
from results.pareto import hypervolume, pareto_front, reference_point


@dataclass(frozen=True)
class Front:
    """The trials of a campaign in the plane ``(x, y)`` and their front.

    Attributes:
        x, y: metric or cost names (``gflops``, ``mpjpe``); their directions come from
            :data:`h2ot_core.contracts.METRICS`.
        rows: complete trials that have both values (lean leaderboard rows: axes, cost, metrics), each with
            ``on_front``.
        reference: the hypervolume's reference point (given, or :func:`reference_point` of the rows).
        hypervolume: of the front against ``reference``, in ``x``-unit × ``y``-unit.
    """

    x: str
    y: str
    rows: list[dict[str, Any]]
    reference: tuple[float, float]
    hypervolume: float

    @property
    def front(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["on_front"]]


def campaign_front(engine: Engine, campaign: str | Sequence[str], x: str = "gflops", y: str = "mpjpe",
                   reference: tuple[float, float] | None = None) -> Front:
    """The non-dominated complete trials of ``campaign`` (or of several, together) in ``(x, y)``, ordered by
    ``x``, and their hypervolume."""
    from results.queries import campaign_list, leaderboard

    names = campaign_list(campaign)
    rows = leaderboard(engine, campaign=names, status=[TrialStatus.COMPLETE], sort=y, lean=True)
    what = f"campaign {names[0]!r}" if len(names) == 1 else f"campaigns {', '.join(map(repr, names))}"
    return front_of(rows, x, y, reference, what)


def front_of(rows: Sequence[Mapping[str, Any]], x: str, y: str, reference: tuple[float, float] | None = None,
             source: str = "the selection") -> Front:
    """The :class:`Front` of leaderboard rows in ``(x, y)``: rows missing either value are left out; an error
    names ``source`` when none is left."""
    minimize = (lower_is_better(x), lower_is_better(y))
    kept = [r for r in rows if r.get(x) is not None and r.get(y) is not None]
    if not kept:
        raise ResultsError(f"{source} has no complete trial with both {x} and {y}")
    points = [(float(r[x]), float(r[y])) for r in kept]
    on_front = set(pareto_front(points, minimize))
    ref = reference or reference_point(points, minimize)
    hv = hypervolume([points[i] for i in on_front], ref, minimize)
    ordered = sorted(({**r, "on_front": i in on_front} for i, r in enumerate(kept)),
                     key=lambda r: (not r["on_front"], float(r[x]), float(r[y])))
    return Front(x, y, ordered, (float(ref[0]), float(ref[1])), hv)


FRONT_COLUMNS = ("trial_key", "backbone", "pruner", "recoverer", "schedule", "seed")


def front_rows(front: Front) -> tuple[list[str], list[list[str]]]:
    """Header and text rows of the front (non-dominated trials only), for Markdown, LaTeX and CSV."""
    header = [*FRONT_COLUMNS, front.x, front.y]
    body = [[str(r.get(c, "")) for c in FRONT_COLUMNS] + [f"{float(r[front.x]):.6g}", f"{float(r[front.y]):.6g}"]
            for r in front.front]
    return header, body


def hypervolume_note(front: Front) -> str:
    """One line stating the hypervolume and its reference point."""
    return (f"Hypervolume {front.hypervolume:.6g} of {len(front.front)} non-dominated of {len(front.rows)} "
            f"complete trials, against the reference point ({front.x} {front.reference[0]:.6g}, "
            f"{front.y} {front.reference[1]:.6g}).")


def front_text(front: Front, fmt: str) -> str:
    """The front as ``markdown``, ``latex`` or ``csv`` (tables' conventions), with the hypervolume line."""
    from results.markdown import markdown_table
    from results.render import tex_escape

    header, body = front_rows(front)
    note = hypervolume_note(front)
    if fmt == "csv":
        buf = io.StringIO()
        csv.writer(buf, lineterminator="\n").writerows([header, *body])
        return buf.getvalue()
    if fmt == "latex":
        lines = [r"\begin{table}[t]", r"\centering", rf"\begin{{tabular}}{{{'l' * len(FRONT_COLUMNS)}rr}}",
                 r"\toprule", " & ".join(tex_escape(h) for h in header) + r" \\", r"\midrule",
                 *(" & ".join(tex_escape(c) for c in row) + r" \\" for row in body), r"\bottomrule",
                 r"\end{tabular}", r"\par\smallskip\footnotesize " + tex_escape(note), r"\end{table}"]
        return "\n".join(lines) + "\n"
    return markdown_table(header, body, "l" * len(FRONT_COLUMNS) + "rr") + "\n\n" + note + "\n"


def write_front(front: Front, out_dir: str | Path, name: str = "pareto") -> list[Path]:
    """``<name>.md``, ``.tex``, ``.csv`` and the plot (``.png``, ``.pdf``) under ``out_dir``."""
    from results.plots import pareto_chart

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt, ext in (("markdown", "md"), ("latex", "tex"), ("csv", "csv")):
        path = out / f"{name}.{ext}"
        path.write_text(front_text(front, fmt), encoding="utf-8")
        paths.append(path)
    better: Literal["min", "max"] = "min" if lower_is_better(front.y) else "max"
    paths += pareto_chart(front.rows, out / name, metric=front.y, cost=front.x, better=better,
                          note=hypervolume_note(front))
    return paths

