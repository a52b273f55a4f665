"""MHFormer converters (``h2ot_core/convert/mhformer.py``): official MHFormer and TPC-MHFormer files give the official forward.

The reference forward (``official_mhformer``) is written from the official code's structure with plain
tensor ops and reads the official key names, so it shares nothing with the converted modules.
"""

from __future__ import annotations

import pytest
import torch
from official_mhformer import mhformer_shapes, ref_mhformer
from official_ref import close, converted_model, sorted_index
from official_ref import randomise_bn as randomise

from h2ot_core.checkpoint import load_native
from h2ot_core.convert.mhformer import convert_mhformer, convert_tpc_mhformer
from h2ot_core.convert.service import convert_official


@pytest.mark.parametrize("frames", [27, 45])
@torch.no_grad()
def test_mhformer_conversion_reproduces_the_official_forward(frames: int) -> None:
    # 27 frames uses the official short-clip embedding (Conv1d + BatchNorm + ReLU), 45 the plain Conv1d.
    sd = randomise(mhformer_shapes(frames=frames, dim=32, hidden=64, mhg_depth=2), seed=frames)
    converted = convert_mhformer(sd)
    assert converted.config["model"]["mhg_depth"] == 2 and converted.config["model"]["mlp_ratio"] == 2.0
    model = converted_model(converted)
    x = torch.randn(2, frames, 17, 2, generator=torch.Generator().manual_seed(0))  # the same input whatever ran before
    expected = ref_mhformer(sd, x, heads=8)
    close(model.backbone(x), expected)
    close(model(x).pose3d[:, 0], expected[:, frames // 2])


@torch.no_grad()
def test_tpc_mhformer_conversion_reads_the_centre_frame_of_the_kept_tokens() -> None:
    sd = randomise(mhformer_shapes(frames=27, dim=32, hidden=64, mhg_depth=2), seed=5)
    converted = convert_tpc_mhformer(sd)
    assert (converted.config["pruner"], converted.config["recoverer"], converted.config["schedule"]) == ("tpc", "none", "1:9")
    x = torch.randn(2, 27, 17, 2, generator=torch.Generator().manual_seed(0))  # the same input whatever ran before
    index = sorted_index(2, 27, 9, seed=6, centre=13)
    out = converted_model(converted)(x, replay=(index,))
    expected = ref_mhformer(sd, x, heads=8, index=index)
    centre_pos = (index == 13).float().argmax(dim=1)
    close(out.pose3d[:, 0], expected[torch.arange(2), centre_pos])


def test_official_file_with_wrappers_converts_to_a_native_checkpoint(tmp_path) -> None:
    sd = randomise(mhformer_shapes(frames=27, dim=32, hidden=64, mhg_depth=2), seed=7)
    src = tmp_path / "mhformer_official.pth"
    torch.save({"model": {f"module.{k}": v for k, v in sd.items()}}, src)
    config = convert_official("tpc_mhformer", src, tmp_path / "native.pt")
    model, saved = load_native(tmp_path / "native.pt")
    assert saved == config and config["schedule"] == "1:9"
    x = torch.randn(1, 27, 17, 2, generator=torch.Generator().manual_seed(0))  # the same input whatever ran before
    with torch.no_grad():
        close(model.backbone(x), ref_mhformer(sd, x, heads=8))
