"""The official recipe per backbone: every ingredient sourced, the README table generated, the LR schedule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from benchmarks import readme
from h2ot_core.errors import ConfigError
from h2ot_core.names import BACKBONES
from h2ot_core.recipes import INGREDIENTS, OFFICIAL, ingredients, markdown_table, official_settings
from h2ot_core.resolve import resolve_settings, resolve_spec
from orchestrator.cli import app

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("backbone", BACKBONES.names())
def test_every_backbone_has_every_ingredient_with_a_public_source(backbone):
    rows = ingredients(backbone)
    assert [r["ingredient"] for r in rows] == list(INGREDIENTS)
    for row in rows:
        assert row["value"] and "/" in row["source"] and ": " in row["source"], row
    assert OFFICIAL[backbone].selection == "best_on_test" and OFFICIAL[backbone].protocol == "official"


def test_hot_scripts_double_the_epoch_and_halve_mixste_every_200_epochs():
    mixste = official_settings("mixste")
    assert (mixste.epoch_clips, mixste.loss_frames, mixste.lr_rule) == ("mirrored_copies", "padded", "hot")
    assert (mixste.lr, mixste.weight_decay, mixste.batch_size, mixste.epochs) == (4e-5, 0.1, 4, 160)
    assert "NationalGAILab/HoT: main_mixste.py" in OFFICIAL["mixste"].sources["lr schedule"]
    # the rate *during* epoch k is lr x factor(k - 1): epochs 1, 100, 200, 201
    lr = [mixste.lr * mixste.lr_factor(k - 1) for k in (1, 100, 200, 201)]
    assert lr == pytest.approx([4e-5, 4e-5 * 0.99**99, 4e-5 * 0.99**199, 4e-5 * 0.99**199 * 0.5], rel=1e-12)
    assert official_settings("mhformer").epoch_clips == "mirrored_copies"
    # the upstream MotionBERT/MotionAGFormer datasets list each clip once and flip it with p 0.5
    assert official_settings("motionbert").epoch_clips == "flip_half"


def test_motionagformer_takes_the_papers_rate_and_says_why():
    assert official_settings("motionagformer").lr == 5e-4
    lr = next(r for r in ingredients("motionagformer") if r["ingredient"] == "lr")
    assert "issue #1" in lr["source"] and "2e-4" in lr["value"]


def test_recipe_official_is_what_a_trial_trains_with_and_ours_stays_the_default():
    assert resolve_settings("mixste").recipe == "ours" and resolve_settings("mixste").lr_rule == "exponential"
    official = resolve_settings("mixste", {"recipe": "official", "epochs": 3})
    assert official.epochs == 3 and official.epoch_clips == "mirrored_copies" and official.lr_rule == "hot"


@pytest.mark.parametrize(("intent", "field", "value"), [
    ({"train": {"recipe": "offical"}}, "train.recipe", "offical"),
    ({"evaluate": {"protocol": "paper"}}, "evaluate.protocol", "paper"),
    ({"selection": "best_on_train"}, "selection", "best_on_train"),
])
def test_unknown_recipe_protocol_or_selection_is_refused_naming_file_field_value(intent, field, value):
    with pytest.raises(ConfigError) as exc:
        resolve_spec({"backbone": "mixste", **intent}, "grid.yaml")
    assert "grid.yaml" in str(exc.value) and field in str(exc.value) and value in str(exc.value)


def test_readme_recipe_table_is_generated():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    new, names = readme.fill(text, ROOT / "benchmarks" / "results")
    assert "recipes" in names
    assert new == text, "README.md is stale: run make readme"
    assert markdown_table() in text


def test_recipe_show_prints_json_and_refuses_an_unknown_backbone():
    runner = CliRunner()
    result = runner.invoke(app, ["recipe", "show", "mixste", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = {r["ingredient"]: r for r in json.loads(result.stdout)}
    assert rows["epoch"]["value"].startswith("every training clip twice")
    bad = runner.invoke(app, ["recipe", "show", "mixtse"])
    assert bad.exit_code == 2 and "mixste" in bad.output


def test_a_grid_with_an_unknown_protocol_or_recipe_names_file_field_value(tmp_path):
    from orchestrator.grid import load_grid

    for fixed, field, value in (("evaluate: {protocol: paper}", "evaluate.protocol", "paper"),
                                ("train: {recipe: offical}", "train.recipe", "offical")):
        path = tmp_path / "g.yaml"
        path.write_text(f"name: g\nversion: 1\ngrid:\n  backbone: [mixste]\nfixed:\n  {fixed}\n")
        with pytest.raises(ConfigError) as exc:
            load_grid(path).expand()
        assert str(path) in str(exc.value) and field in str(exc.value) and value in str(exc.value)
