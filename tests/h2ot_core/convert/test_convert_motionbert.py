"""MotionBERT converters (``h2ot_core/convert/motionbert.py``): official MotionBERT and HoT-MotionBERT files give the official forward.

The reference forward (``official_motionbert``) follows MotionBERT's reshape-based temporal attention and
reads the official key names, so it shares nothing with the converted modules.
"""

from __future__ import annotations

import torch
from official_motionbert import motionbert_shapes, ref_motionbert
from official_ref import close, converted_model, shrink
from official_ref import randomise_ln as randomise

from h2ot_core.checkpoint import load_native
from h2ot_core.convert.motionbert import convert_hot_motionbert, convert_motionbert
from h2ot_core.convert.service import convert_official


@torch.no_grad()
def test_motionbert_conversion_reproduces_the_official_forward() -> None:
    sd = shrink(randomise(motionbert_shapes(frames=27, dim=32, depth=3, dim_rep=48), seed=4),
                "joints_embed.weight", "joints_embed.bias", "pos_embed", "temp_embed")
    converted = convert_motionbert(sd)
    assert converted.config["model"]["dim_rep"] == 48 and converted.config["model"]["mlp_ratio"] == 4.0
    x = torch.randn(2, 27, 17, 3, generator=torch.Generator().manual_seed(0))  # the same input whatever ran before
    model = converted_model(converted)
    expected = ref_motionbert(sd, x)
    close(model.backbone(x), expected)
    close(model(x).pose3d, expected)


@torch.no_grad()
def test_hot_motionbert_conversion_reproduces_the_official_forward_for_the_frames_our_model_kept() -> None:
    sd = randomise(motionbert_shapes(frames=27, dim=32, depth=3, dim_rep=48, hot_tokens=9), seed=5)
    converted = convert_hot_motionbert(sd)
    assert (converted.config["pruner"], converted.config["recoverer"], converted.config["schedule"]) == ("tpc", "tra", "1:9")
    assert torch.equal(converted.state_dict["recoverer.queries"], sd["x_token"])
    x = torch.randn(2, 27, 17, 3, generator=torch.Generator().manual_seed(0))  # the same input whatever ran before
    out = converted_model(converted)(x)
    assert out.pose3d.shape == (2, 27, 17, 3) and out.kept_index.shape == (2, 9)
    close(out.pose3d, ref_motionbert(sd, x, prune=(1, out.kept_index)))


def test_official_file_with_wrappers_converts_to_a_native_checkpoint(tmp_path) -> None:
    sd = randomise(motionbert_shapes(frames=27, dim=32, depth=2, dim_rep=48, hot_tokens=9), seed=8)
    src = tmp_path / "hot_motionbert_official.pth"
    torch.save({"model_pos": {f"module.{k}": v for k, v in sd.items()}}, src)
    config = convert_official("hot_motionbert", src, tmp_path / "native.pt")
    model, saved = load_native(tmp_path / "native.pt")
    assert saved == config and config["schedule"] == "1:9"
    x = torch.randn(1, 27, 17, 3, generator=torch.Generator().manual_seed(0))  # the same input whatever ran before
    with torch.no_grad():
        out = model(x)
        close(out.pose3d, ref_motionbert(sd, x, prune=(1, out.kept_index)))
