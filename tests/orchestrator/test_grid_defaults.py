"""A paper grid without --profile is the published configuration on Human3.6M: the ``paper`` profile's trials.

The paper grids include ``search_spaces/_base/campaign.yaml``, whose ``default_profile: paper`` does it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.grid import campaign_name, load_grid

ROOT = Path(__file__).resolve().parents[2]
PAPER_GRIDS = sorted((ROOT / "search_spaces" / "paper").glob("*.yaml"))



@pytest.mark.parametrize("path", PAPER_GRIDS, ids=lambda p: p.stem)
def test_no_profile_is_the_paper_profile(path: Path) -> None:
    plain, paper = load_grid(path), load_grid(path, "paper")
    assert [s.trial_key for s in plain.expand()] == [s.trial_key for s in paper.expand()]
    assert {s.dataset for s in plain.expand()} == {"h36m"}
    assert all(s.data.get("source") == "cpn" for s in plain.expand())
    assert campaign_name(plain) == plain.name  # the campaign keeps the grid's plain name


@pytest.mark.parametrize("path", PAPER_GRIDS, ids=lambda p: p.stem)
def test_tiny_stays_synthetic(path: Path) -> None:
    assert {s.dataset for s in load_grid(path, "tiny").expand()} == {"synthetic"}
