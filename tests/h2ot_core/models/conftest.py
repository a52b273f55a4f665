"""Makes the helpers of ``tests/h2ot_core`` (``tiny``) importable from the model tests in this folder."""

from __future__ import annotations

import sys
from pathlib import Path

_HELPERS = str(Path(__file__).resolve().parents[1])
if _HELPERS not in sys.path:
    sys.path.append(_HELPERS)
