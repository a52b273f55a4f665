"""Which stored campaign a table spec reads.

Which campaign a spec reads (:func:`resolve_specs`). ``filters.campaign`` names a *grid*; it matches
every campaign run from that grid, whatever the profile: ``campaign: token_sweep`` matches the campaigns
``token_sweep``, ``token_sweep-tiny`` and ``token_sweep-paper`` (a campaign's grid and profile are read
from the resolved grid it stored; for a campaign stored without one, from its name ``GRID[-PROFILE]``).
When several campaigns match, the spec reads one of them: a campaign without profile first, else the most
recently created one (ties broken by name). ``h2ot tables build --campaign NAME`` names the campaign
instead. Whenever the campaign read is not the one the spec names, a note below the table says which
campaign and profile the numbers come from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path

import yaml
from sqlalchemy import Engine, select

from results.errors import ResultsError
from results.queries import check_campaign
from results.schema import Campaign
from results.table_spec import TableSpec, load_spec


@dataclass(frozen=True)
class CampaignRef:
    """A stored campaign seen as a run of a grid: ``token_sweep-tiny`` is grid ``token_sweep``, profile ``tiny``."""

    name: str
    grid: str | None
    profile: str | None
    created_at: datetime | None = None

    def matches(self, grid: str) -> bool:
        """Whether this campaign ran grid ``grid`` (any profile)."""
        if self.grid is not None:
            return self.grid == grid
        return self.name == grid or self.name.startswith(f"{grid}-")

    def profile_for(self, grid: str) -> str | None:
        if self.grid is not None:
            return self.profile
        if self.name.startswith(f"{grid}-"):
            return self.name[len(grid) + 1:] or None
        return None

    def describe(self, grid: str | None = None) -> str:
        profile = self.profile_for(grid) if grid else self.profile
        return f"`{self.name}` (" + (f"profile `{profile}`" if profile else "no profile") + ")"


def _grid_of(grid_yaml: str | None) -> tuple[str | None, str | None]:
    """``(grid name, profile)`` from a campaign's stored resolved grid, ``(None, None)`` when absent."""
    if not grid_yaml:
        return None, None
    try:
        doc = yaml.safe_load(grid_yaml)
    except yaml.YAMLError:
        return None, None
    if not isinstance(doc, Mapping) or not isinstance(doc.get("name"), str):
        return None, None
    profile = doc.get("profile")
    return doc["name"], None if profile is None else str(profile)


def stored_campaigns(engine: Engine) -> list[CampaignRef]:
    """Every campaign in the database with the grid and profile it ran."""
    with engine.connect() as conn:
        rows = conn.execute(select(Campaign.name, Campaign.grid_yaml, Campaign.created_at)
                            .order_by(Campaign.name)).all()
    return [CampaignRef(name, *_grid_of(grid_yaml), created_at) for name, grid_yaml, created_at in rows]


def pick_campaign(campaigns: Sequence[CampaignRef], grid: str) -> CampaignRef | None:
    """The campaign a spec naming grid ``grid`` reads: no profile first, then the most recent, then by name."""
    matching = [c for c in campaigns if c.matches(grid)]
    if not matching:
        return None
    def rank(c: CampaignRef) -> tuple[bool, float, str]:
        created = c.created_at.timestamp() if c.created_at else float("-inf")
        return c.profile_for(grid) is not None, -created, c.name

    return min(matching, key=rank)


def _sourced(spec: TableSpec, ref: CampaignRef) -> TableSpec:
    if ref.name == spec.campaign:
        return spec
    grid = spec.campaign or ref.grid
    note = f"Campaign: {ref.describe(grid)}" + (f", a run of grid `{grid}`." if grid else ".")
    return replace(spec, campaign=ref.name, source_note=note)


def resolve_specs(engine: Engine, paths: Sequence[str | Path], *, campaign: str | None = None,
                  named: bool = False) -> list[TableSpec]:
    """Load the specs in ``paths`` and point each at the campaign it reads (module docstring).

    Without ``campaign``, a spec naming a grid reads :func:`pick_campaign`'s choice; a spec whose grid has
    no campaign keeps its name (and selects nothing). With ``campaign`` (an unknown name gets a
    did-you-mean), ``named`` specs (the user listed them) all read it; otherwise only the specs of that
    campaign's grid are kept, and an error says so when there are none.
    """
    specs = [load_spec(p) for p in paths]
    known = stored_campaigns(engine)
    if campaign is None:
        out = []
        for spec in specs:
            ref = pick_campaign(known, spec.campaign) if spec.campaign else None
            out.append(_sourced(spec, ref) if ref else spec)
        return out
    check_campaign(engine, campaign)
    ref = next(c for c in known if c.name == campaign)
    if named:
        return [_sourced(spec, ref) for spec in specs]
    kept = [spec for spec in specs if spec.campaign and ref.matches(spec.campaign)]
    if not kept:
        grids = sorted({s.campaign for s in specs if s.campaign})
        raise ResultsError(f"No table spec selects campaign {campaign!r} (grid {ref.grid or campaign!r}); "
                           f"the specs select grids: {', '.join(grids) or '(none)'}. Name a spec to build it "
                           f"from this campaign: h2ot tables build SPEC --campaign {campaign}")
    return [_sourced(spec, ref) for spec in kept]
