"""Trial keys never drift: users' leaderboards dedupe on them.

``tests/fixtures/trial_keys_main_a09de28.json`` holds, for the shipped grids, every trial's key and
canonical JSON as the code of commit a09de28 computed them (before ``pipeline`` became a spec field).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from h2ot_core.contracts import ADDED_SETTINGS, TrialSpec
from orchestrator.grid import load_grid

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = json.loads((ROOT / "tests" / "fixtures" / "trial_keys_main_a09de28.json").read_text())


#: what the paper profile added at issue 18 (the official recipe, protocol and selection): its trials are new
#: experiments with new keys, by design; nothing else of theirs changed
PAPER_SETTINGS = {"train": {"recipe": "official"}, "evaluate": {"protocol": "official"}, "selection": "best_on_test"}


def _without_paper_settings(spec: TrialSpec) -> TrialSpec:
    train = {k: v for k, v in spec.train.items() if k != "recipe"}
    return replace(spec, train=train, evaluate={}, selection="last_epoch", selection_metric=None)


@pytest.mark.parametrize("grid_at", sorted(GOLDEN))
def test_keys_of_shipped_grids_are_unchanged(grid_at):
    path, _, profile = grid_at.partition("@")
    grid = load_grid(ROOT / path, None if profile == "None" else profile)
    specs = grid.expand()
    if profile == "paper":
        assert all(s.train["recipe"] == "official" and s.protocol == "official" and s.selection == "best_on_test"
                   for s in specs)
        specs = [_without_paper_settings(s) for s in specs]
    keys = {s.trial_key: s.canonical_json() for s in specs}
    assert keys == GOLDEN[grid_at]


def test_the_official_settings_at_their_defaults_leave_the_key_alone():
    plain = TrialSpec("mixste", train={"epochs": 2})
    spelled = TrialSpec("mixste", train={"epochs": 2, "recipe": "ours", "epoch_clips": "flip_half",
                                         "loss_frames": "real"}, evaluate={"protocol": "real_frames"})
    assert spelled.trial_key == plain.trial_key
    assert TrialSpec("mixste", train={"epochs": 2}, evaluate={"protocol": "official"}).trial_key != plain.trial_key
    assert TrialSpec("mixste", train={"epochs": 2, "recipe": "official"}).trial_key != plain.trial_key


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
