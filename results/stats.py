"""Statistics over seeds: which differences between configurations are real.

Every figure here comes from scipy (``scipy.stats.bootstrap``, ``ttest_rel``, ``ttest_ind``), with a
fixed random generator so a table regenerated from the same database is byte-identical.

- :func:`summarize`: mean, sample standard deviation and a 95 % percentile-bootstrap confidence interval
  of one configuration's values over seeds (no interval from a single seed).
- :func:`compare`: a configuration against another (the baseline, or the runner-up of a table). With
  two or more seeds in common the test is paired (same seed, same data: ``ttest_rel``); otherwise, with
  two or more seeds each, Welch's unpaired test (``ttest_ind(equal_var=False)``); with fewer, no test.
- :func:`significantly_better`: the bold rule of the tables: better in the metric's direction and
  ``p < alpha``. A tie within noise, or a single seed, is never significant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

#: significance level of the tables' bold rule
ALPHA = 0.05
CONFIDENCE = 0.95
N_RESAMPLES = 9999
#: the bootstrap's generator seed: fixed, so intervals are reproducible
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class Summary:
    """One configuration over ``n`` seeds: mean, sample std (0 for one seed) and the 95 % interval."""

    n: int
    mean: float
    std: float
    ci_low: float | None
    ci_high: float | None


@dataclass(frozen=True)
class Comparison:
    """``a`` against ``b``: mean difference ``a - b``, the test used and its two-sided p-value.

    ``test`` is ``paired-t`` (seeds in common), ``welch-t`` (no common seeds) or ``none`` (too few values;
    ``p_value`` is then ``None``).
    """

    n: int
    mean_diff: float
    test: str
    p_value: float | None


def summarize(values: Sequence[float]) -> Summary:
    """Mean, std and bootstrap interval of ``values`` (one per seed); an interval needs two distinct values."""
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("summarize: no values")
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if x.size > 1 else 0.0
    if x.size < 2 or np.all(x == x[0]):
        low = high = (mean if x.size > 1 else None)
        return Summary(int(x.size), mean, std, low, high)
    res = stats.bootstrap((x,), np.mean, confidence_level=CONFIDENCE, n_resamples=N_RESAMPLES,
                          method="percentile", rng=np.random.default_rng(BOOTSTRAP_SEED))
    return Summary(int(x.size), mean, std, float(res.confidence_interval.low),
                   float(res.confidence_interval.high))


def compare(a: Mapping[int, float], b: Mapping[int, float]) -> Comparison:
    """``a`` against ``b``, both ``seed -> value``: paired on common seeds when there are two or more."""
    common = sorted(set(a) & set(b))
    if len(common) >= 2:
        xa = np.array([a[s] for s in common], dtype=float)
        xb = np.array([b[s] for s in common], dtype=float)
        diff = xa - xb
        if np.all(diff == diff[0]):  # identical differences: t is undefined (0/0 or ±inf)
            p = 1.0 if diff[0] == 0 else 0.0
        else:
            p = float(stats.ttest_rel(xa, xb).pvalue)
        return Comparison(len(common), float(diff.mean()), "paired-t", p)
    xa, xb = np.array(list(a.values()), dtype=float), np.array(list(b.values()), dtype=float)
    diff = float(xa.mean() - xb.mean()) if xa.size and xb.size else float("nan")
    if xa.size >= 2 and xb.size >= 2 and (xa.std() > 0 or xb.std() > 0):
        p = float(stats.ttest_ind(xa, xb, equal_var=False).pvalue)
        return Comparison(min(xa.size, xb.size), diff, "welch-t", p)
    return Comparison(min(xa.size, xb.size), diff, "none", None)


def significantly_better(best: Mapping[int, float], other: Mapping[int, float], *, lower_is_better: bool,
                         alpha: float = ALPHA) -> bool:
    """Whether ``best`` beats ``other`` in the metric's direction with ``p < alpha`` (see module docstring)."""
    c = compare(best, other)
    if c.p_value is None or not np.isfinite(c.mean_diff):
        return False
    better = c.mean_diff < 0 if lower_is_better else c.mean_diff > 0
    return better and c.p_value < alpha


def format_summary(s: Summary, digits: int = 1) -> str:
    """``41.2 ± 0.3 [40.9, 41.6]`` (one seed: ``41.2``)."""
    text = f"{s.mean:.{digits}f}"
    if s.n > 1:
        text += f" ± {s.std:.{digits}f}"
        if s.ci_low is not None and s.ci_high is not None:
            text += f" [{s.ci_low:.{digits}f}, {s.ci_high:.{digits}f}]"
    return text
