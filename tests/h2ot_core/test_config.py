"""The one YAML reader and deep merge: every error names the file (and line:column for syntax errors)."""

from __future__ import annotations

from pathlib import Path

import pytest

from h2ot_core.config import deep_merge, read_yaml
from h2ot_core.errors import ConfigError, DataError


def test_reads_a_mapping_and_an_empty_file_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "g.yaml"
    path.write_text("name: demo\ngrid: {pruner: [tpc, tps]}\n")
    assert read_yaml(path, "grid file") == {"name": "demo", "grid": {"pruner": ["tpc", "tps"]}}
    path.write_text("# only a comment\n")
    assert read_yaml(path, "grid file") == {}


@pytest.mark.parametrize(("text", "message"), [
    ("grid:\n  backbone: [mixste\n  pruner: tpc\n", r"g\.yaml:\d+:\d+: grid file is not valid YAML \(YAML syntax error"),
    ("a: 1\n b: 2\n", r"g\.yaml:2:\d+: grid file is not valid YAML"),
    ("- mixste\n- tpc\n", r"g\.yaml: a grid file must be a mapping of keys, got list"),
    ("just text\n", r"g\.yaml: a grid file must be a mapping of keys, got str"),
])
def test_bad_content_names_file_line_and_column(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "g.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message) as info:
        read_yaml(path, "grid file")
    assert str(info.value).startswith(str(path))


def test_syntax_error_position_is_one_based(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("backbone: mixste\nframes: [27\n")
    with pytest.raises(ConfigError) as info:
        read_yaml(path, "trial file")
    where = str(info.value).split(": ", 1)[0]
    assert where.startswith(f"{path}:") and int(where.rsplit(":", 2)[1]) >= 2


def test_missing_unreadable_and_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml: table spec does not exist"):
        read_yaml(tmp_path / "nope.yaml", "table spec")
    with pytest.raises(ConfigError, match="cannot read grid file: it is a directory"):
        read_yaml(tmp_path, "grid file")
    binary = tmp_path / "b.yaml"
    binary.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ConfigError, match=r"b\.yaml: cannot read grid file: not UTF-8 text"):
        read_yaml(binary, "grid file")


def test_error_class_can_be_chosen(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("[1, 2]\n")
    with pytest.raises(DataError, match="a table spec must be a mapping"):
        read_yaml(path, "table spec", error=DataError)


def test_deep_merge_recurses_into_mappings_only_and_copies() -> None:
    base = {"model": {"dim": 32, "depth": 3}, "grid": {"pruner": ["tpc"]}, "name": "a"}
    over = {"model": {"dim": 64}, "grid": {"pruner": ["tps"]}, "seed": 1}
    merged = deep_merge(base, over)
    assert merged == {"model": {"dim": 64, "depth": 3}, "grid": {"pruner": ["tps"]}, "name": "a", "seed": 1}
    assert base["model"] == {"dim": 32, "depth": 3}  # inputs untouched
    assert deep_merge({"a": {"b": 1}}, {"a": 2}) == {"a": 2}
    assert deep_merge({"a": 2}, {"a": {"b": 1}}) == {"a": {"b": 1}}
