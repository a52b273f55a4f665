"""h2ot_core: hourglass token pruning for video pose transformers (HoT, CVPR 2024; H2OT, TPAMI 2025).

Stands alone as a library (torch, numpy, einops): no Ray, MLflow, SQL or CLI imports here.

Every name a grid, the CLI or a table uses is a key of a registry in :mod:`h2ot_core.names`, registered
with one ``register(name, "module:attr", info)`` call that holds the lazy target of the implementation
and, for backbones and datasets, every fact the rest of the code reads about it. That file imports no
torch, so ``h2ot ls`` and grid validation stay fast; a name registered twice or an entry of the wrong
kind is refused at import. Each recipe below is complete: nothing else lists the names.

Add a backbone
    1. ``h2ot_core/models/<name>.py``: a :class:`~h2ot_core.models.base.Backbone` subclass split into
       ``embed`` → ``forward_block(i)`` × ``depth`` → ``forward_norm`` → ``head`` (plus ``frame_features``
       and, for TPA, ``temporal_qk``). Blocks must run on any ``f <= num_frames`` frames. Size arguments
       are keyword-only and have no defaults; options beyond the size (``qkv_bias``, ``drop_rate``,
       ``drop_path_rate``, ``tra_heads``) may.
    2. ``h2ot_core/names.py``: one ``BACKBONES.register("<name>", "h2ot_core.models.<name>:<Class>",
       BackboneInfo(...))`` with its ``pipeline``, official size (``defaults``), ``hot_schedule`` and
       ``h2ot_schedule`` at that size, training ``recipe`` (a :class:`~h2ot_core.engine.settings.TrainSettings`)
       and ``tiny`` size.
    3. ``h2ot_core/recipes.py``: its ``OFFICIAL`` entry (what ``train.recipe: official`` changes, the official
       selection and protocol, a public source per ingredient); ``tests/h2ot_core/test_recipes.py`` checks
       every backbone has one, and ``make readme`` adds it to the README's recipe table.
    4. To read official checkpoints: ``h2ot_core/convert/<name>.py`` and its entry in
       ``h2ot_core/convert/__init__.py`` (``CONVERTERS``), tested in
       ``tests/h2ot_core/convert/test_convert_<name>.py``.
    5. ``tests/h2ot_core/models/test_backbones.py``: shapes, pruned-length blocks and the official
       parameter count (its own behaviour in ``tests/h2ot_core/models/test_<name>.py``, its published
       FLOPs in ``tests/h2ot_core/test_cost.py``). The every-combination tests of
       ``tests/h2ot_core/test_hourglass.py`` pick the new entry and its tiny size up from the registry.

Add a pruner
    1. ``h2ot_core/pruning/<name>.py``: a :class:`~h2ot_core.pruning.base.TokenPruner` subclass with
       ``scores`` (the base ``select`` keeps the best, sorted, and the centre frame for seq2frame) or its
       own ``select`` (which must then keep ``ctx.centre`` itself); set ``needs_qk`` to receive the
       preceding block's temporal-attention queries and keys (TPA).
    2. ``h2ot_core/names.py``: ``PRUNERS.register("<name>", "h2ot_core.pruning.<name>:<Class>")``.
    3. ``tests/h2ot_core/pruning/test_pruning_<name>.py``: what it keeps on hand-made tokens; the
       every-combination tests run it with every backbone by themselves.

Add a recoverer
    1. ``h2ot_core/recovering/<name>.py``: a :class:`~h2ot_core.recovering.base.TokenRecoverer` subclass
       with ``stage`` ``"tokens"`` (before the head) or ``"poses"`` (after it), whose constructor takes
       the keywords ``num_frames``, ``dim``, ``num_heads``, ``qkv_bias`` (``**_`` for those it ignores).
    2. ``h2ot_core/names.py``: ``RECOVERERS.register("<name>", "h2ot_core.recovering.<name>:<Class>")``.
    3. ``tests/h2ot_core/recovering/test_recovering_<name>.py``: what it returns for known kept frames.

Add a dataset
    1. ``h2ot_core/data/<name>.py``: ``load_<name>(data_dir: Path | None, **options) -> PoseData``
       (:mod:`h2ot_core.data.base`), reading files with :mod:`h2ot_core.data.npz` and
       :mod:`h2ot_core.data.checks` so a bad file is a :class:`~h2ot_core.errors.DataError` naming it.
    2. ``h2ot_core/names.py``: one ``DATASETS.register("<name>", "h2ot_core.data.<name>:load_<name>",
       DatasetInfo(...))`` with its ``num_joints``, the ``files`` it reads, whether it is
       ``self_contained`` (makes or finds its own files) and ``seeded`` (takes the trial seed), its loss
       ``joint_weights`` and its ``pck_joints`` (``None``: not scored with PCK/AUC).
    3. ``tests/h2ot_core/data/test_data_readers.py``: a small fixture read back, and malformed files
       refused with the file's name.

Add a metric
    1. ``h2ot_core/metrics.py``: a function of predicted and true poses ``[..., J, 3]`` (metres) giving one
       value per frame (mm or %); a per-frame pose error goes into ``FRAME_METRICS``.
    2. ``h2ot_core/engine/evaluate.py``: accumulate it per action (``FRAME_METRICS`` entries already are).
    3. ``h2ot_core/vocabulary.py``: its ``MetricDef(name, lower_is_better, unit, title, evaluated)`` in
       ``METRICS``; a metric missing there cannot be ranked, plotted or selected on.
    4. ``tests/h2ot_core/test_metrics.py``: its value on hand-computed poses.
"""

__version__ = "0.1.0"
