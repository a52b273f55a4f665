"""What a search's proposals cost: GFLOPs per clip of a spec's model, and the FLOPs cap checked against the
cheapest schedule the space allows (before Ray starts). Counting FLOPs builds the model, so this imports torch.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from h2ot_core.contracts import TrialSpec
from h2ot_core.errors import ConfigError, H2OTError
from orchestrator.search_space import SearchSpec

#: one combination of axis values -> its checked spec
SpecFor = Callable[[dict[str, Any]], TrialSpec]


@lru_cache(maxsize=4096)
def _gflops(backbone: str, pruner: str, recoverer: str, schedule: str, pipeline: str | None, frames: int,
            model_json: str) -> float:
    import torch

    from h2ot_core.cost import count_flops, example_input
    from h2ot_core.factory import create_model

    model = create_model(backbone, pruner, recoverer, schedule, pipeline=pipeline, num_frames=frames,
                         **json.loads(model_json)).eval()
    with torch.no_grad():
        return count_flops(model, example_input(model))[0]


def spec_gflops(spec: TrialSpec) -> float:
    """GFLOPs per clip of ``spec``'s model in the papers' convention (cached per architecture)."""
    return _gflops(spec.backbone, spec.pruner, spec.recoverer, spec.schedule, spec.pipeline, spec.frames,
                   json.dumps(dict(spec.model), sort_keys=True))


def cheapest_gflops(search: SearchSpec, spec_for: SpecFor) -> float:
    """A lower bound of any proposal's GFLOPs: one stage at the first layer down to the fewest tokens.

    Every schedule the space allows runs each block on at least as many tokens as this one. The pruner's
    own work is not in the papers' FLOPs (it has no Linear layer), so one pruner stands for all.
    """
    schedule = f"{search.layers[0]}:{search.tokens[0]}"
    pruner = search.choices["pruner"][0]
    costs = [spec_gflops(spec_for({"backbone": b, "pruner": pruner, "recoverer": r, "schedule": schedule,
                                   **search.fixed_axes}))
             for b in search.choices["backbone"] for r in search.choices["recoverer"]]
    return min(costs)


def check_budget(search: SearchSpec, spec_for: SpecFor) -> None:
    """Refuse a FLOPs cap below the cheapest schedule the space can produce (before Ray starts);
    ``spec_for`` turns one combination of axis values into its checked spec (``GridSpec.spec_for``)."""
    if search.max_gflops is None:
        return
    try:
        cheapest = cheapest_gflops(search, spec_for)
    except H2OTError as exc:
        raise ConfigError(f"{search.path}: search.space: {exc}") from None
    if cheapest > search.max_gflops:
        raise ConfigError(f"{search.path}: search.budget.max_gflops: {search.max_gflops} is below the cheapest "
                          f"schedule the space allows ({cheapest:.4g} GFLOPs at "
                          f"{search.layers[0]}:{search.tokens[0]}); raise the cap or widen the space")
