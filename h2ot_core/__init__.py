"""h2ot_core: hourglass token pruning for video pose transformers (HoT, CVPR 2024; H2OT, TPAMI 2025).

Stands alone as a library (torch, numpy, einops): no Ray, MLflow, SQL or CLI imports here.
"""

__version__ = "0.1.0"
