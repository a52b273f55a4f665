"""Statistics over seeds and Pareto fronts, checked against values computed independently."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from results.pareto import hypervolume, pareto_front, reference_point
from results.stats import ALPHA, compare, format_summary, significantly_better, summarize

# --- Pareto front and hypervolume on a hand-made set ----------------------------------------------------
#        gflops  mpjpe
POINTS = [(10.0, 50.0),   # 0 front
          (20.0, 40.0),   # 1 front
          (25.0, 45.0),   # 2 dominated by 1
          (40.0, 30.0),   # 3 front
          (40.0, 35.0),   # 4 dominated by 3
          (60.0, 30.0),   # 5 dominated by 3 (same mpjpe, more flops)
          (80.0, 29.0)]   # 6 front


def test_front_of_a_hand_made_set():
    assert pareto_front(POINTS) == [0, 1, 3, 6]


def test_front_with_a_maximised_objective():
    # maximise the second objective: (10, 50) is then best in both where it counts
    assert pareto_front(POINTS, minimize=(True, False)) == [0]


def test_hypervolume_by_hand():
    ref = (100.0, 60.0)
    # rectangles swept left to right over the front 0, 1, 3, 6:
    by_hand = (100 - 10) * (60 - 50) + (100 - 20) * (50 - 40) + (100 - 40) * (40 - 30) + (100 - 80) * (30 - 29)
    assert hypervolume(POINTS, ref) == pytest.approx(by_hand)
    assert hypervolume([POINTS[i] for i in pareto_front(POINTS)], ref) == pytest.approx(by_hand)


def test_hypervolume_on_a_grid_count():
    # Monte-Carlo-free independent check: count unit cells dominated by any point on an integer grid.
    pts = [(1, 5), (2, 3), (4, 2), (3, 4)]
    ref = (6, 6)
    cells = sum(any(px <= x and py <= y for px, py in pts)
                for x, y in itertools.product(range(6), range(6)))
    assert hypervolume(pts, ref) == cells


def test_points_beyond_the_reference_add_nothing_and_the_default_reference_bounds_all():
    assert hypervolume([(5.0, 5.0)], (4.0, 10.0)) == 0.0
    ref = reference_point(POINTS)
    assert ref[0] > max(p[0] for p in POINTS) and ref[1] > max(p[1] for p in POINTS)


# --- bootstrap intervals and paired tests -----------------------------------------------------------
def test_bootstrap_interval_matches_a_fixed_seed_resample_by_hand():
    values = [41.0, 42.5, 40.2, 43.1, 41.7]
    s = summarize(values)
    rng = np.random.default_rng(0)
    x = np.array(values)
    means = x[rng.integers(0, len(x), size=(9999, len(x)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    assert s.mean == pytest.approx(np.mean(values)) and s.std == pytest.approx(np.std(values, ddof=1))
    # scipy resamples with its own draw order; the interval must agree to well within its own noise
    assert s.ci_low == pytest.approx(low, abs=0.15) and s.ci_high == pytest.approx(high, abs=0.15)
    assert s.ci_low < s.mean < s.ci_high
    assert summarize(values) == s  # fixed generator: reproducible


def test_one_seed_has_no_interval():
    s = summarize([40.0])
    assert (s.n, s.std, s.ci_low, s.ci_high) == (1, 0.0, None, None)
    assert format_summary(s) == "40.0"
    assert format_summary(summarize([40.0, 42.0])).startswith("41.0 ± 1.4 [")


def test_paired_t_by_hand():
    a = {0: 40.0, 1: 41.0, 2: 39.5, 3: 40.4}
    b = {0: 41.0, 1: 41.8, 2: 40.9, 3: 41.1, 9: 99.0}  # seed 9 has no pair and is left out
    c = compare(a, b)
    d = np.array([a[s] - b[s] for s in range(4)])
    t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    from scipy.stats import t as student

    p = 2 * student.sf(abs(t), df=len(d) - 1)
    assert (c.test, c.n) == ("paired-t", 4)
    assert c.mean_diff == pytest.approx(d.mean()) and c.p_value == pytest.approx(p)


def test_bold_only_when_significant():
    best = {0: 40.0, 1: 41.0, 2: 39.5, 3: 40.4}
    clearly_worse = {s: v + 1.0 + 0.05 * s for s, v in best.items()}
    within_noise = {0: 40.3, 1: 40.6, 2: 39.9, 3: 40.2}
    assert significantly_better(best, clearly_worse, lower_is_better=True)
    assert not significantly_better(best, within_noise, lower_is_better=True)
    assert compare(best, within_noise).p_value > ALPHA
    # the wrong direction is never "better", however significant
    assert not significantly_better(best, clearly_worse, lower_is_better=False)
    # single seeds: no test, no bold
    assert not significantly_better({0: 1.0}, {0: 5.0}, lower_is_better=True)


def test_unpaired_seeds_use_welch():
    c = compare({0: 1.0, 1: 1.2, 2: 0.9}, {5: 2.0, 6: 2.1, 7: 2.3})
    assert c.test == "welch-t" and c.p_value < 0.01
