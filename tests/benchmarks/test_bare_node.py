"""The benchmarks run on a bare GPU node: torch and the repository, without the database or tracking stack."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

BLOCK = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('sqlalchemy', 'ray', 'mlflow', 'alembic', 'optuna', 'psycopg'):
            raise ImportError('not on this node: ' + name)
sys.meta_path.insert(0, Block())
import benchmarks.core, benchmarks.precision
from benchmarks.output import md_table
print(md_table(('variant', 'ms'), [('HoT', 1.5)])[2])
"""


def test_benchmarks_import_and_write_tables_without_the_database_stack():
    proc = subprocess.run([sys.executable, "-c", BLOCK], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "| HoT | 1.5 |"
