"""Making datasets: D4RL-style kinds from online SAC, and small recorded ones.

D4RL's datasets cannot be downloaded on every machine, and Minari's hosted
Gymnasium-v5 ports lack the random, medium-replay and medium-expert kinds, so
the project makes them itself the way D4RL did (docs/datasets.md). One job
per module:

* :mod:`~mb2po_jax.datagen.config`: settings, validation, the env, randomness streams;
* :mod:`~mb2po_jax.datagen.env_state`: MuJoCo state save/restore (exact resume);
* :mod:`~mb2po_jax.datagen.behaviour`: the SAC agent that acts the behaviour
  policies, their evaluation and checkpoints;
* :mod:`~mb2po_jax.datagen.rollouts`: the env-stepping loop, episodes, statistics;
* :mod:`~mb2po_jax.datagen.run_state`: what a SAC run checkpoints (its replay
  buffer, the actor snapshots) and reading it back;
* :mod:`~mb2po_jax.datagen.sac_run`: the online SAC run: training, checkpoints, exact resume;
* :mod:`~mb2po_jax.datagen.kinds`: the dataset kinds, a table of builders;
* :mod:`~mb2po_jax.datagen.cards`: data cards;
* :mod:`~mb2po_jax.datagen.make`: :func:`make_datasets`, from kinds to written datasets;
* :mod:`~mb2po_jax.datagen.maker`: :func:`make_minari_dataset`, a small dataset
  of a given policy (tests, the quickstart).

Reading datasets (and the one Minari writer) is :mod:`mb2po_jax.data`, which
imports nothing from here.
"""

from mb2po_jax.datagen.behaviour import build_agent, initial_actor, load_behaviour_policy
from mb2po_jax.datagen.cards import CARD_FILE, read_card, summary_table
from mb2po_jax.datagen.config import (
    D4RL_DATASET_SIZE,
    GenerationConfig,
    GenerationError,
    InterruptedGeneration,
    env_dims,
    resolve_env,
    stream_seed,
    validate_config,
)
from mb2po_jax.datagen.kinds import (
    KIND_TABLE,
    Built,
    Kind,
    KindContext,
    expand_kinds,
    validate_request,
)
from mb2po_jax.datagen.make import MadeKind, default_workdir, make_datasets
from mb2po_jax.datagen.request import build_request
from mb2po_jax.datagen.maker import MadeDataset, make_minari_dataset
from mb2po_jax.datagen.run_state import GenerationState, load_run_checkpoint
from mb2po_jax.datagen.sac_run import BehaviourRun, train_behaviour
