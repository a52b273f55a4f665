"""Provenance captured on the driver: git SHA, package versions, where the repository lives.

Ray workers run from a copied working dir without ``.git``, so the SHA is read once here and passed
down as a tag; trials add their own device and data fingerprint.
"""

from __future__ import annotations

import functools
import importlib.metadata
import platform
import subprocess
from pathlib import Path

#: the repository root (parent of the ``orchestrator`` package)
REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("torch", "numpy", "ray", "mlflow", "sqlalchemy", "h2ot-lab")


@functools.cache
def git_sha() -> str | None:
    """The checkout's commit, suffixed ``-dirty`` when tracked files changed; ``None`` outside git."""
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{sha}-dirty" if dirty else sha


@functools.cache
def package_versions() -> dict[str, str]:
    """Installed versions of the packages that change results (missing ones omitted)."""
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions
