"""One row per trial as an Arrow table (axes, wide metrics, cost, provenance), written as Parquet/CSV/Arrow.

Metrics are pivoted wide by their flat keys (:func:`h2ot_core.contracts.metric_key`): ``test_mpjpe``,
``test_p_mpjpe``, ``train_loss`` for action ``avg`` and, with ``actions=True``, ``test_mpjpe__Walking``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import sqlalchemy as sa
from sqlalchemy import Engine, select

from h2ot_core.contracts import metric_key
from results.errors import ResultsError, unknown
from results.queries import Campaigns, check_campaign, filtered
from results.schema import Campaign, CampaignTrial, Metric, Trial

#: trial columns the export leaves out: the row id, and the per-epoch history (``h2ot campaign sync``'s source)
_NOT_EXPORTED = frozenset({"id", "history_json"})


def _arrow_type(column: sa.ColumnElement[Any]) -> pa.DataType:
    """The Arrow type of a trial column, from its SQL type (timestamps are UTC)."""
    kind = column.type
    if isinstance(kind, sa.Boolean):
        return pa.bool_()
    if isinstance(kind, sa.Integer):
        return pa.int64()
    if isinstance(kind, sa.Float):
        return pa.float64()
    if isinstance(kind, sa.DateTime):
        return pa.timestamp("us", tz="UTC")
    return pa.string()


#: the fixed columns and their Arrow types: every trial column in the table's order (a column added to the
#: schema is exported with no edit here), the evaluation protocol (read from the spec), then the campaigns a
#: trial belongs to; wide metric columns follow
BASE_SCHEMA = pa.schema(
    [pa.field(c.name, _arrow_type(c)) for c in Trial.__table__.columns if c.name not in _NOT_EXPORTED]
    + [pa.field("protocol", pa.string()), pa.field("campaigns", pa.string())]
)


def export_table(engine: Engine, *, filters: Mapping[str, Sequence[Any]] | None = None,
                 campaign: Campaigns = None, status: Sequence[str] | None = None, actions: bool = False
                 ) -> pa.Table:
    """The selected trials as an Arrow table (ordered by trial_key) with :data:`BASE_SCHEMA` + metrics."""
    check_campaign(engine, campaign)
    cols = [getattr(Trial, f.name) for f in BASE_SCHEMA if f.name != "campaigns"]
    ids = filtered(select(Trial.id), filters, campaign, status)
    with engine.connect() as conn:
        trials = conn.execute(filtered(select(Trial.id, *cols), filters, campaign, status)
                              .order_by(Trial.trial_key)).mappings().all()
        mstmt = select(Metric.trial_id, Metric.name, Metric.split, Metric.action, Metric.value).where(
            Metric.trial_id.in_(ids))
        if not actions:
            mstmt = mstmt.where(Metric.action == "avg")
        metric_rows = conn.execute(mstmt).all()
        links = conn.execute(select(CampaignTrial.trial_id, Campaign.name)
                             .join(Campaign, Campaign.id == CampaignTrial.campaign_id)
                             .where(CampaignTrial.trial_id.in_(ids))).all()
    wide: dict[int, dict[str, float]] = defaultdict(dict)
    for tid, name, split, action, value in metric_rows:
        wide[tid][metric_key(split, name, action)] = value
    member: dict[int, list[str]] = defaultdict(list)
    for tid, name in links:
        member[tid].append(name)
    metric_cols = sorted({c for d in wide.values() for c in d})
    data: dict[str, list[Any]] = {f.name: [] for f in BASE_SCHEMA}
    data.update({c: [] for c in metric_cols})
    for t in trials:
        for f in BASE_SCHEMA:
            data[f.name].append(",".join(sorted(member[t["id"]])) if f.name == "campaigns" else t[f.name])
        for c in metric_cols:
            data[c].append(wide[t["id"]].get(c))
    schema = pa.schema([*BASE_SCHEMA, *(pa.field(c, pa.float64()) for c in metric_cols)])
    return pa.Table.from_pydict(data, schema=schema)


def _arrow(table: pa.Table, path: Path) -> None:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


WRITERS: dict[str, Callable[[pa.Table, Path], None]] = {
    "parquet": lambda t, p: pq.write_table(t, p),
    "csv": lambda t, p: pa_csv.write_csv(t, p),
    "arrow": _arrow,
}


#: file suffixes and the format each names
SUFFIXES: dict[str, str] = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".arrow": "arrow",
                            ".feather": "arrow", ".ipc": "arrow"}


def export_format(path: str | Path, fmt: str | None = None) -> str:
    """The format to write ``path`` in: ``fmt`` when given (it must agree with a suffix that names another
    format), else the one its suffix names; an unknown suffix without ``fmt`` is refused (``x.xlsx`` is not
    silently written as Parquet)."""
    suffix = Path(path).suffix.lower()
    if fmt is not None:
        if fmt not in WRITERS:
            raise unknown("export format", fmt, list(WRITERS))
        if SUFFIXES.get(suffix, fmt) != fmt:
            raise ResultsError(f"--out {path}: a {SUFFIXES[suffix]} file name, but --format {fmt}; name the file "
                               f"*{next(s for s, f in SUFFIXES.items() if f == fmt)} or drop --format")
        return fmt
    if suffix not in SUFFIXES:
        raise ResultsError(f"--out {path}: unknown file type {suffix or '(no suffix)'!r}; name the file "
                           f"{', '.join(f'*{s}' for s in SUFFIXES)} (parquet, csv, arrow), or give --format")
    return SUFFIXES[suffix]


def write_export(table: pa.Table, path: str | Path, fmt: str) -> Path:
    """Write ``table`` to ``path`` as ``parquet``, ``csv`` or ``arrow`` (Arrow IPC file)."""
    if fmt not in WRITERS:
        raise unknown("export format", fmt, list(WRITERS))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    WRITERS[fmt](table, path)
    return path


def export_trials(engine: Engine, path: str | Path, fmt: str | None = None, *, actions: bool = False,
                  filters: Mapping[str, Sequence[Any]] | None = None, campaign: Campaigns = None,
                  status: Sequence[str] | None = None) -> pa.Table:
    """:func:`export_table` written to ``path`` by :func:`write_export` in :func:`export_format` (checked first)."""
    fmt = export_format(path, fmt)
    table = export_table(engine, filters=filters, campaign=campaign, status=status, actions=actions)
    write_export(table, path, fmt)
    return table
