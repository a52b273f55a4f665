"""The registries: one entry per name with its info, refusals at registration, torch-free lookups."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import FrozenInstanceError

import pytest

from h2ot_core.engine.settings import TrainSettings
from h2ot_core.errors import RegistrationError
from h2ot_core.names import (
    BACKBONE_INFO,
    BACKBONES,
    DATASETS,
    PRUNERS,
    RECOVERERS,
    BackboneInfo,
    DatasetInfo,
    backbone_info,
    dataset_info,
    resolved_model_config,
)
from h2ot_core.registry import Registry, UnknownNameError

RECIPE = TrainSettings(loss={"mpjpe": 1.0}, optimizer="adamw", lr=1e-3, weight_decay=0.0, lr_decay=0.99, epochs=1,
                       batch_size=2)
BB_INFO = BackboneInfo(pipeline="seq2seq", defaults={"dim": 8}, hot_schedule="", h2ot_schedule="", recipe=RECIPE)
DS_INFO = DatasetInfo(num_joints=17, files=("x.npz",))


def _backbones() -> Registry:
    return Registry("backbone", target_type=type, info_type=BackboneInfo)


def test_every_entry_carries_its_info():
    assert BACKBONES.names() == sorted(BACKBONE_INFO)
    for name in BACKBONES:
        info = backbone_info(name)
        assert info is BACKBONE_INFO[name]
        assert isinstance(info.recipe, TrainSettings)
        assert {"num_frames", "num_joints", "in_chans", "dim", "depth", "num_heads"} <= set(info.defaults)
        assert set(info.tiny) <= set(info.defaults)
    for name in DATASETS:
        info = dataset_info(name)
        assert info.files and info.num_joints == 17
        assert info.joint_weights is None or len(info.joint_weights) == info.num_joints
    assert dataset_info("mpi_inf_3dhp").pck_joints == tuple(range(14))
    assert dataset_info("synthetic").seeded and dataset_info("synthetic").self_contained
    assert not dataset_info("h36m").self_contained


def test_infos_are_keyword_only_and_frozen():
    with pytest.raises(TypeError):
        BackboneInfo("seq2seq", {}, "", "", RECIPE)  # type: ignore[misc]
    with pytest.raises(TypeError):
        DatasetInfo(17, ("x.npz",))  # type: ignore[misc]
    with pytest.raises(FrozenInstanceError):
        backbone_info("mixste").pipeline = "seq2frame"  # type: ignore[misc]


def test_the_official_size_is_written_once():
    # The classes have no size defaults: building one needs the registered size.
    cls = BACKBONES.get("mixste")
    with pytest.raises(TypeError, match="required keyword-only"):
        cls()
    assert resolved_model_config("mixste", {"dim": 64})["dim"] == 64
    assert resolved_model_config("mixste")["depth"] == backbone_info("mixste").defaults["depth"]


def test_unknown_names_get_a_did_you_mean():
    with pytest.raises(UnknownNameError, match="Did you mean: mixste"):
        backbone_info("mixtse")
    with pytest.raises(UnknownNameError, match="Did you mean: h36m"):
        dataset_info("h36n")


def test_a_name_registered_twice_is_refused():
    reg = _backbones()
    reg.register("net", "pkg.mod:Net", BB_INFO)
    with pytest.raises(RegistrationError, match=re.escape("backbone 'net' is already registered (to pkg.mod:Net)")):
        reg.register("net", "pkg.other:Net", BB_INFO)
    assert reg.names() == ["net"]
    with pytest.raises(RegistrationError, match="already registered"):
        BACKBONES.register("mixste", "h2ot_core.models.mixste:MixSTE", backbone_info("mixste"))
    with pytest.raises(RegistrationError, match="already registered"):
        PRUNERS.register("tpc", "h2ot_core.pruning.cluster:TPC")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"target": "pkg.mod:Net", "info": DS_INFO}, "info must be a BackboneInfo, got a DatasetInfo"),
    ({"target": "pkg.mod:Net"}, "info must be a BackboneInfo, got none"),
    ({"target": "pkg.mod.Net", "info": BB_INFO}, "must read 'package.module:attribute'"),
    ({"target": 42, "info": BB_INFO}, "target must be a class or a 'module:attr' string, got int 42"),
    ({"target": len, "info": BB_INFO}, "target must be a class"),
])
def test_an_entry_of_the_wrong_type_is_refused(kwargs, message):
    reg = _backbones()
    with pytest.raises(RegistrationError, match=message):
        reg.register("net", **kwargs)
    assert "net" not in reg


def test_wrong_types_in_the_real_registries_are_refused():
    with pytest.raises(RegistrationError, match="info must be a DatasetInfo, got a BackboneInfo"):
        DATASETS.register("new_data", "pkg.mod:load", BB_INFO)
    with pytest.raises(RegistrationError, match="target must be a callable"):
        DATASETS.register("new_data", 3.5, DS_INFO)
    with pytest.raises(RegistrationError, match="carry no info"):
        RECOVERERS.register("new_rec", "pkg.mod:Rec", DS_INFO)
    with pytest.raises(RegistrationError, match="lower snake case"):
        PRUNERS.register("New-Pruner", "pkg.mod:P")
    assert "new_data" not in DATASETS and "new_rec" not in RECOVERERS


def test_a_lazy_target_of_the_wrong_kind_is_refused_when_imported():
    reg = _backbones()
    reg.register("net", "h2ot_core.names:resolved_model_config", BB_INFO)
    with pytest.raises(RegistrationError, match="expected a class"):
        reg.get("net")


def test_the_decorator_form_registers_the_object_with_its_info():
    reg = _backbones()

    @reg.register("net", info=BB_INFO)
    class Net:
        pass

    assert reg.get("net") is Net and reg.info("net") is BB_INFO
    with pytest.raises(RegistrationError, match="already registered"):
        reg.register("net", info=BB_INFO)(Net)


def test_listing_and_looking_up_never_import_torch():
    code = ("import sys, h2ot_core.names as n, orchestrator.grid\n"
            "n.backbone_info('mixste').pipeline; n.dataset_info('h36m').files; n.BACKBONES.names()\n"
            "assert 'torch' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)
