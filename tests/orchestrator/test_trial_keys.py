"""Trial keys never drift: users' leaderboards dedupe on them.

``tests/fixtures/trial_keys_main_a09de28.json`` holds, for the shipped grids, every trial's key and
canonical JSON as the code of commit a09de28 computed them (before ``pipeline`` became a spec field).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from h2ot_core.contracts import ADDED_SETTINGS, TrialSpec
from orchestrator.grid import load_grid

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = json.loads((ROOT / "tests" / "fixtures" / "trial_keys_main_a09de28.json").read_text())


@pytest.mark.parametrize("grid_at", sorted(GOLDEN))
def test_keys_of_shipped_grids_are_unchanged(grid_at):
    path, _, profile = grid_at.partition("@")
    grid = load_grid(ROOT / path, None if profile == "None" else profile)
    keys = {s.trial_key: s.canonical_json() for s in grid.expand()}
    assert keys == GOLDEN[grid_at]


def test_a_few_keys_pinned_literally():
    # Independent of the fixture file: a regenerated fixture cannot hide a drift of these.
    smoke = {s.trial_key for s in load_grid(ROOT / "search_spaces" / "smoke.yaml").expand()}
    assert {"0b5678f3dcc76cab", "2559fea449f0ce49"} <= smoke
    versus = load_grid(ROOT / "search_spaces" / "paper" / "seq2seq_vs_seq2frame.yaml", "tiny").expand()
    seq2frame = {s.trial_key: s for s in versus}["0e3d3fb3dc46f96c"]
    assert seq2frame.pipeline == "seq2frame" and "pipeline" not in seq2frame.model


def test_pipeline_is_a_field_and_the_native_one_is_normalised_away():
    native = TrialSpec("mixste", pipeline="seq2seq")
    assert native.pipeline is None and native.effective_pipeline == "seq2seq"
    assert native.trial_key == TrialSpec("mixste").trial_key
    legacy = TrialSpec.from_dict({**TrialSpec("mixste").to_dict(), "pipeline": None,
                                  "model": {"pipeline": "seq2frame"}})
    assert legacy.pipeline == "seq2frame" and legacy == TrialSpec("mixste", pipeline="seq2frame")
    assert TrialSpec("mhformer").effective_pipeline == "seq2frame"


def test_a_setting_added_later_enters_the_key_only_away_from_its_default(monkeypatch):
    before = TrialSpec("mixste", train={"epochs": 2}).trial_key
    monkeypatch.setitem(ADDED_SETTINGS, ("train", "precision"), "fp32")
    assert TrialSpec("mixste", train={"epochs": 2, "precision": "fp32"}).trial_key == before
    assert TrialSpec("mixste", train={"epochs": 2, "precision": "bf16"}).trial_key != before
