"""The web tests reuse the results tests' hand-made leaderboards and PostgreSQL helpers (``smoke_data``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "results"))
