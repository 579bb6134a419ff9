"""The whole pipeline of paper Algorithm 1 as one call.

    from mb2po_jax import pipeline
    results = pipeline.run(config, "runs/hopper")

``config`` is an ``ml_collections.ConfigDict`` (:func:`paper_config`, a file
of ``experiments/configs/``, or :func:`get_base_config` with fields set);
``run`` checks it, reads it once into typed :class:`Settings`, trains or
resumes every phase in the workdir and returns what it writes to
``results.json``. Layers, top to bottom:

* :mod:`~.run` (the run and its workdir: :mod:`~.workdir`, :mod:`~.results`,
  :mod:`~.resources`, :mod:`~.validation`);
* the phases: :mod:`~.awac_phase`, :mod:`~.dynamics_phase`,
  :mod:`~.fine_tuning_phase` (with :mod:`~.rollout_model` and
  :mod:`~.buffer_checkpointing`), started from other runs by :mod:`~.warm_start`;
* what they are built from: :mod:`~.builders`, :mod:`~.seed_axis`,
  :mod:`~.dataset`, :mod:`~.settings`, :mod:`~.config`;
* below: the library's agents, models and :mod:`mb2po_jax.runner`.
"""

from mb2po_jax.pipeline.config import SCALES, apply_scale, get_base_config, paper_config
from mb2po_jax.pipeline.dataset import PreparedData, prepare_dataset
from mb2po_jax.pipeline.errors import ResourceError, UsageError
from mb2po_jax.pipeline.restore import evaluate_checkpoint, restore_policy
from mb2po_jax.pipeline.results import RESULTS_FILE
from mb2po_jax.pipeline.run import run
from mb2po_jax.pipeline.settings import ALGORITHMS, AWAC, DYNAMICS, MB2PO, MOPO, Settings
from mb2po_jax.pipeline.validation import validate_config
from mb2po_jax.pipeline.workdir import EXTENDABLE, RUN_FILE

__all__ = [
    "ALGORITHMS", "AWAC", "DYNAMICS", "EXTENDABLE", "MB2PO", "MOPO", "RESULTS_FILE", "RUN_FILE",
    "SCALES", "PreparedData", "ResourceError", "Settings", "UsageError", "apply_scale",
    "evaluate_checkpoint", "get_base_config", "paper_config", "prepare_dataset",
    "restore_policy", "run", "validate_config",
]
