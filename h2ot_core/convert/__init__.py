"""Official HoT/H2OT checkpoints → native checkpoints.

Each converter maps an official ``state_dict`` (``torch.save(model.state_dict())``) onto our
modules and says which hourglass configuration it describes.
"""

from __future__ import annotations

from h2ot_core.registry import Registry

CONVERTERS: Registry = Registry("official architecture", target_type=callable)
for _arch, _target in {
    "mixste": "h2ot_core.convert.mixste:convert_mixste",
    "hot_mixste": "h2ot_core.convert.mixste:convert_hot_mixste",
    "tpc_mixste": "h2ot_core.convert.mixste:convert_tpc_mixste",
    "motionbert": "h2ot_core.convert.motionbert:convert_motionbert",
    "hot_motionbert": "h2ot_core.convert.motionbert:convert_hot_motionbert",
    "motionagformer": "h2ot_core.convert.motionagformer:convert_motionagformer",
    "hot_motionagformer": "h2ot_core.convert.motionagformer:convert_hot_motionagformer",
    "mhformer": "h2ot_core.convert.mhformer:convert_mhformer",
    "tpc_mhformer": "h2ot_core.convert.mhformer:convert_tpc_mhformer",
}.items():
    CONVERTERS.register(_arch, _target)
