"""``make readme``: README figure blocks come from benchmarks/results/*.md; the claim shows missing as missing."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import readme
from benchmarks.claim import table_lines
from benchmarks.output import RESULTS_DIR, write_result
from h2ot_core.contracts import Cost, MetricRecord, TrialResult

README = """# Title

Intro.

<!-- bench:core -->
| old | table |
|---|---|
| 1 | 2 |
<!-- /bench:core -->

Prose between.

<!-- bench:claim -->
<!-- /bench:claim -->
"""


def _results(tmp_path: Path) -> Path:
    results = tmp_path / "results"
    results.mkdir(exist_ok=True)
    (results / "core.md").write_text("| new | table |\n|---|---|\n| 3 | 4 |\n\nMeasured today.\n")
    (results / "claim.md").write_text("| model |\n|---|\n| unpruned |\n")
    return results


def test_blocks_replaced_by_their_files_and_idempotent(tmp_path: Path) -> None:
    path = tmp_path / "README.md"
    path.write_text(README)
    args = ["--readme", str(path), "--results", str(_results(tmp_path))]
    assert readme.main(args) == 0
    once = path.read_text()
    assert "| 1 | 2 |" not in once and "| 3 | 4 |\n\nMeasured today.\n<!-- /bench:core -->" in once
    assert "<!-- bench:claim -->\n| model |\n|---|\n| unpruned |\n<!-- /bench:claim -->" in once
    assert once.startswith("# Title\n\nIntro.\n\n<!-- bench:core -->\n") and "\n\nProse between.\n\n" in once
    assert readme.main(args) == 0 and path.read_text() == once  # the second run changes nothing
    assert readme.main([*args, "--check"]) == 0


def test_missing_file_is_a_clear_error_and_nothing_is_written(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "README.md"
    path.write_text(README)
    results = _results(tmp_path)
    (results / "claim.md").unlink()
    assert readme.main(["--readme", str(path), "--results", str(results)]) == 1
    err = capsys.readouterr().err
    assert f"{results / 'claim.md'}: missing" in err and "run: make claim" in err
    assert path.read_text() == README


def test_unclosed_marker_and_stale_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "README.md"
    path.write_text("x\n<!-- bench:core -->\n| a |\n")
    assert readme.main(["--readme", str(path), "--results", str(_results(tmp_path))]) == 1
    assert "line 2: <!-- bench:core --> has no closing <!-- /bench:core -->" in capsys.readouterr().err
    path.write_text(README)
    assert readme.main(["--readme", str(path), "--results", str(_results(tmp_path)), "--check"]) == 1
    assert path.read_text() == README


def test_shipped_readmes_are_up_to_date_with_the_result_files() -> None:
    names = {}
    for path in readme.TARGETS:
        text = path.read_text(encoding="utf-8")
        filled, names[path] = readme.fill(text, RESULTS_DIR)
        assert filled == text, f"{path} is stale: run make readme"
    assert {"core", "attention", "claim", "data", "engine", "results", "orchestration", "search", "video"} \
        <= set(names[readme.BENCHMARKS_README])
    # the README keeps the tables newcomers read (settings, official recipes) and a short performance summary
    assert sorted(names[readme.README]) == ["recipes", "settings"]


def test_write_result_prints_and_writes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_result(["| a |", "|---|", "| 1 |"], tmp_path / "sub" / "x.md")
    assert path is not None and path.read_text() == "| a |\n|---|\n| 1 |\n"
    assert "| 1 |" in capsys.readouterr().out
    assert write_result(["| a |"], "-") is None


def _result(status: str, mpjpe: float | None, gflops: float | None) -> TrialResult:
    metrics = [] if mpjpe is None else [MetricRecord("mpjpe", "test", mpjpe), MetricRecord("p_mpjpe", "test", 10.0)]
    cost = None if gflops is None else Cost(params=10, gflops=gflops, gflops_total=gflops, latency_ms=None)
    return TrialResult("k", {}, status, metrics, cost)


def test_claim_shows_a_missing_metric_as_missing_never_zero() -> None:
    lines = table_lines([("unpruned", "-", _result("complete", 100.0, 1.0), 10.0),
                         ("HoT (TPC+TRA)", "1:33", _result("diverged", None, 0.6), 5.0),
                         ("H2OT (TPS+TRI)", "1:41,3:13", _result("complete", 98.0, 0.5), 4.0)])
    assert lines[2] == "| unpruned | – | – | 1.0000 | – | 100.00 | 10.00 | 10.0 |"
    assert lines[3] == "| HoT | tpc + tra | 1:33 | 0.6000 | −40.0% | missing (diverged) | missing (diverged) | 5.0 |"
    assert lines[4] == "| H2OT | tps + tri | 1:41,3:13 | 0.5000 | −50.0% | 98.00 (−2.0%) | 10.00 (+0.0%) | 4.0 |"
    assert not any(" 0.00 " in line for line in lines)


def test_readme_contents_list_every_section() -> None:
    """A newcomer's table of contents: every ## and ### section of README.md, in order, and nothing else."""
    import re

    text = readme.README.read_text(encoding="utf-8")
    start = text.index("**Contents**")
    body = text[text.index("\n## ", start):]
    heads = [re.sub(r"[^\w\- ]", "", h.lower().strip()).replace(" ", "-")
             for h in re.findall(r"^#{2,3} (.+)$", body, re.M)]
    links = re.findall(r"\]\(#([^)]+)\)", text[start:text.index("\n## ", start)])
    assert links == heads, "README.md: add the new section to **Contents** (in order)"
