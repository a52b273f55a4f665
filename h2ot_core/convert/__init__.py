"""Official HoT/H2OT checkpoints → native checkpoints.

Each converter maps an official ``state_dict`` (``torch.save(model.state_dict())``) onto our
modules and says which hourglass configuration it describes.
"""

from __future__ import annotations

from h2ot_core.registry import Registry

CONVERTERS: Registry = Registry("official architecture", target_type=callable)
for _arch, _target, _description in (
    ("mixste", "h2ot_core.convert.mixste:convert_mixste", "official MixSTE weights, unpruned"),
    ("hot_mixste", "h2ot_core.convert.mixste:convert_hot_mixste", "HoT-MixSTE weights: tpc + tra, 3:81"),
    ("tpc_mixste", "h2ot_core.convert.mixste:convert_tpc_mixste", "TPC-MixSTE weights (seq2frame): tpc, 7:61"),
    ("motionbert", "h2ot_core.convert.motionbert:convert_motionbert", "official MotionBERT weights, unpruned"),
    ("hot_motionbert", "h2ot_core.convert.motionbert:convert_hot_motionbert",
     "HoT-MotionBERT weights: tpc + tra, 1:81"),
    ("motionagformer", "h2ot_core.convert.motionagformer:convert_motionagformer",
     "official MotionAGFormer weights, unpruned"),
    ("hot_motionagformer", "h2ot_core.convert.motionagformer:convert_hot_motionagformer",
     "HoT-MotionAGFormer weights: tpc + tra, 7:81"),
    ("mhformer", "h2ot_core.convert.mhformer:convert_mhformer", "official MHFormer weights, unpruned"),
    ("tpc_mhformer", "h2ot_core.convert.mhformer:convert_tpc_mhformer", "TPC-MHFormer weights: tpc, 1:117"),
):
    CONVERTERS.register(_arch, _target, description=_description)
