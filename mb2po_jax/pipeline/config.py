"""The experiment config: every field a run reads, the paper's per-task
values and the scales.

Every config file in ``experiments/configs/`` defines ``get_config()``
returning an ``ml_collections.ConfigDict`` built from :func:`get_base_config`
or :func:`paper_config`; :mod:`mb2po_jax.pipeline.settings` reads it once
into typed settings. Values are
the paper's (Villaflor, Dolan and Schneider, "Fine-tuning Offline
Reinforcement Learning with Model-Based Policy Optimization", appendix 7): a
paper config runs at the paper's scale (500k AWAC steps of batch 1024, ...),
about 25 minutes per task and seed on one H100-class GPU
(docs/benchmarks.md) and days on a 2-core CPU. Smaller scales
(``quickstart.py``, :func:`cpu_scale`) change step and sample counts only,
never the architecture or the losses.

Override any field from the command line, e.g.
``--config.awac.num_steps=1000 --config.seed=3``.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import ml_collections
from ml_collections import config_dict

from mb2po_jax import paper
from mb2po_jax.agents.awac import AWACConfig
from mb2po_jax.agents.sac import SACConfig
from mb2po_jax.model.dynamics import DynamicsConfig
from mb2po_jax.pipeline.errors import UsageError
from mb2po_jax.training import defaults

logger = logging.getLogger(__name__)

# The paper's per-task (alpha, omega, h, lambda) and MOPO's (h, lambda)
# (mb2po_jax.paper), under the names the config files use.
PAPER_MB2PO_TABLE = paper.MB2PO_TABLE
MOPO_TABLE = paper.MOPO_TABLE


def get_base_config() -> ml_collections.ConfigDict:
    """Every field a run reads, with the paper's values as defaults."""
    config = ml_collections.ConfigDict()
    config.seed = 0
    # Seeds seed .. seed + num_seeds - 1 trained side by side as one vmapped
    # program (mb2po_jax/seeds.py), sharded over the visible devices.
    config.num_seeds = 1
    # How the seeds share the program: 'vmap' (each op over every seed),
    # 'map' (lax.map: seeds one after another inside it, a single seed's
    # matmul shapes), 'auto' ('map' on one CPU device, where it is faster,
    # 'vmap' on accelerators and several devices).
    config.seed_batching = "auto"
    # A paper task name ('hopper-mixed'), 'minari:<dataset id>' or
    # 'hdf5:<path to a D4RL file>'; see mb2po_jax.data.resolve_dataset.
    config.dataset = "hopper-mixed"
    # Evaluation env; None takes the dataset's own (eval) env id.
    config.env_id = config_dict.placeholder(str)
    # Where D4RL HDF5 files live; None: $D4RL_DATASET_DIR, else ~/.d4rl/datasets.
    config.d4rl_dir = config_dict.placeholder(str)
    # Fetch a Minari-hosted dataset when it is not local (network access).
    config.download = False

    # Record a small local dataset when config.dataset is missing (quickstart
    # and tests only: a paper run must never train on data it made up).
    config.make_dataset = ml_collections.ConfigDict()
    config.make_dataset.enabled = False
    config.make_dataset.env_id = "Hopper-v5"
    config.make_dataset.num_steps = 20_000
    config.make_dataset.policy = "random"
    config.make_dataset.seed = 0

    # AWAC pretraining (appendix 7.1): the run length and batch size, then
    # every hyperparameter of agents.awac.AWACConfig with its default (declared
    # there once, with the paper's values and the named deviations
    # target_selection / log_std_max for ablations, docs/results.md).
    config.awac = ml_collections.ConfigDict()
    config.awac.num_steps = 500_000
    config.awac.batch_size = 1024
    config.awac.update(defaults(AWACConfig))

    # Dynamics ensemble (appendix 7.2): steps and per-member batch size, then
    # model.dynamics.DynamicsConfig's defaults (the paper's; nll_reduction and
    # early_stopping are MOPO's reference-code deviations, for ablations).
    config.dynamics = ml_collections.ConfigDict()
    config.dynamics.num_steps = 100_000
    config.dynamics.batch_size = 256  # per member: each member draws its own
    config.dynamics.update(defaults(DynamicsConfig))

    # Which fine-tuning algorithm follows the dynamics phase: "mb2po" (the
    # paper: AWAC pretraining, then MB2PO) or "mopo" (MOPO, the paper's main
    # comparison: SAC from scratch in the same conservative MDP, no AWAC).
    config.algorithm = "mb2po"

    # MB2PO fine-tuning (appendix 7.3); the per-task values come from
    # PAPER_MB2PO_TABLE via paper_config(). num_iterations = 0 runs AWAC only.
    config.mb2po = ml_collections.ConfigDict()
    config.mb2po.alpha = 1.0
    config.mb2po.omega = 0.8
    config.mb2po.horizon = 1
    config.mb2po.penalty_coef = 1.0
    config.mb2po.num_iterations = 500
    config.mb2po.rollout_samples = 1_000_000
    config.mb2po.updates_per_iteration = 1000
    # K: the model buffer holds the last K iterations' rollouts
    # (K * rollout_samples rows; ~11 GB float32 for hopper at paper scale).
    config.mb2po.buffer_iterations = 100
    # u(s, a): "max_std_norm" (MOPO, the paper's text) or "max_frobenius"
    # (Algorithm 1 as printed); see mb2po_jax.model.rollout.
    config.mb2po.uncertainty = "max_std_norm"
    # (s', r) of a model step: "sample" from a random elite's Gaussian (the
    # paper, MOPO) or "mean" (a named deviation, docs/results.md).
    config.mb2po.next_state = "sample"
    # What steps the rollouts: "ensemble" (the learned model: the paper),
    # "simulator" (a diagnostic: MuJoCo itself, no penalty, h = 1, from dataset
    # rows whose state the observation holds; mb2po_jax.model.simulator_model)
    # or "online" (a control: whole episodes of the current policy in the real
    # env from its resets, rollout_samples env steps per iteration, e.g. 5000;
    # online AWAC's setting; mb2po_jax.model.online_env).
    config.mb2po.model = "ensemble"
    # Rollout start states: "dataset" (every row: the paper) or "restorable"
    # (only rows without a clipped velocity, whose observation holds the
    # whole state; a named deviation, and what the simulator needs).
    config.mb2po.start_states = "dataset"
    config.mb2po.block_size = 2048  # rollout rows per block (memory only)
    config.mb2po.eval_every = 25  # iterations
    config.mb2po.checkpoint_every = 25  # iterations
    config.mb2po.keep_checkpoints = 2
    # What a checkpoint keeps of the model buffer: "rows" (the rows: K * S *
    # (2 obs + act + 3) float32 per seed, 11-17 GB at paper scale) or
    # "regenerate" (each slot's policy, ~0.9 MB at paper size; the rows are
    # rolled out again on restore and checked against saved checksums), both
    # exact; or "refill" (a named approximation for checkpoints that must stay
    # small: nothing of the buffer, every slot rolled out again from the
    # current policy on restore; results count it as buffer_refills).
    # paper_scale() takes "regenerate"; a run refuses to start where "rows"
    # checkpoints would not fit on the workdir's disk.
    config.mb2po.buffer_checkpoint = "rows"

    # MOPO (Yu et al., 2020) with its reference code's defaults
    # (github.com/tianheyu927/mopo, examples/config/d4rl): each epoch rolls out
    # 50k start states for h steps with the current policy, then makes 1000 SAC
    # updates of batch 256 with 5 % dataset rows; the model pool keeps the last
    # 5 epochs. h and lambda per task come from MOPO_TABLE via paper_config().
    config.mopo = ml_collections.ConfigDict()
    config.mopo.horizon = 5
    config.mopo.penalty_coef = 1.0
    config.mopo.num_iterations = 1000  # epochs of updates_per_iteration updates
    config.mopo.rollout_samples = 50_000 * 5  # 50k start states x h
    config.mopo.updates_per_iteration = 1000
    config.mopo.buffer_iterations = 5
    config.mopo.real_ratio = 0.05
    config.mopo.batch_size = 256
    config.mopo.uncertainty = "max_std_norm"  # MOPO's penalty
    config.mopo.next_state = "sample"  # MOPO samples; "mean": see config.mb2po.next_state
    config.mopo.model = "ensemble"  # "simulator": see config.mb2po.model
    config.mopo.start_states = "dataset"  # see config.mb2po.start_states
    config.mopo.block_size = 2048
    config.mopo.eval_every = 25
    config.mopo.checkpoint_every = 25
    config.mopo.keep_checkpoints = 2
    config.mopo.buffer_checkpoint = "rows"  # see config.mb2po.buffer_checkpoint
    # SAC (agents.sac.SACConfig's defaults: 2 x 256, lr 3e-4, tau 5e-3,
    # automatic entropy tuning) with MOPO's fixed target entropy of -3.
    config.mopo.sac = ml_collections.ConfigDict(defaults(SACConfig))
    config.mopo.sac.target_entropy = -3.0

    # Divergence guard: stop when |Q| exceeds factor * max|r| / (1 - gamma).
    config.guard = ml_collections.ConfigDict()
    config.guard.q_limit_factor = 10.0

    # Start phases from another workdir's checkpoints (same dataset), so
    # fine-tuning sweeps need not pretrain again. None: train here.
    config.init = ml_collections.ConfigDict()
    config.init.awac_workdir = config_dict.placeholder(str)
    config.init.dynamics_workdir = config_dict.placeholder(str)

    # The training loop: K updates run as one lax.scan under one jit, and
    # metrics come back to the host once per chunk.
    config.train = ml_collections.ConfigDict()
    config.train.steps_per_chunk = 1000
    config.train.eval_every = 50_000  # multiple of steps_per_chunk
    config.train.checkpoint_every = 10_000  # multiple of steps_per_chunk
    config.train.keep_checkpoints = 3
    config.train.progress_bar = True
    config.train.tensorboard = True

    config.eval = ml_collections.ConfigDict()
    config.eval.num_episodes = 10
    config.eval.num_envs = 10
    config.eval.seed = 10_000  # episode k resets with seed + k
    # None keeps the env's own time limit (1000 steps for the MuJoCo tasks).
    config.eval.max_episode_steps = config_dict.placeholder(int)
    return config


def paper_config(task: str) -> ml_collections.ConfigDict:
    """The paper's config for a task such as ``'hopper-mixed'``, at paper scale."""
    if task not in PAPER_MB2PO_TABLE:
        raise ValueError(f"Unknown paper task '{task}'; valid: {sorted(PAPER_MB2PO_TABLE)}.")
    config = get_base_config()
    config.dataset = task
    alpha, omega, horizon, penalty = paper.mb2po_hyperparameters(task)
    config.mb2po.alpha = alpha
    config.mb2po.omega = omega
    config.mb2po.horizon = horizon
    config.mb2po.penalty_coef = penalty
    if task in MOPO_TABLE:
        config.mopo.horizon, config.mopo.penalty_coef = MOPO_TABLE[task]
        config.mopo.rollout_samples = 50_000 * config.mopo.horizon
    return config


def paper_scale(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """The paper's budgets as they are, with checkpoints that fit a disk:
    MB2PO's model buffer of 100 x 1M rows (11-17 GB per seed) is rolled out
    again on restore instead of written with every checkpoint
    (``mb2po.buffer_checkpoint``); the training is the same."""
    config.mb2po.buffer_checkpoint = "regenerate"
    return config


def cpu_scale(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Shrinks a paper config to CPU size: about 2 hours of a 2-core CPU for a
    run of every phase (AWAC pretraining alone about 50 minutes on an AMD EPYC
    Zen 4; the harness's equal-update control adds as much again).

    Same architecture, losses and per-task alpha/omega/h/lambda; fewer steps
    and samples: AWAC 50k steps of batch 256 (paper 500k of 1024), dynamics
    20k steps (100k), MB2PO 200 iterations of 50k model samples and 250
    updates with a buffer of the last 20 iterations (500 x 1M samples, 1000
    updates, K = 100). MOPO (``algorithm=mopo``): 100 epochs of 1000 SAC
    updates (MOPO's reference code: 1000 epochs), as many updates as AWAC
    pretraining and MB2PO together. Scores are not comparable with the
    paper's table.
    """
    config.awac.num_steps = 50_000
    config.awac.batch_size = 256
    config.dynamics.num_steps = 20_000
    config.mb2po.num_iterations = 200
    config.mb2po.rollout_samples = 50_000
    config.mb2po.updates_per_iteration = 250
    config.mb2po.buffer_iterations = 20
    config.mb2po.eval_every = 20
    config.mb2po.checkpoint_every = 20
    config.mopo.num_iterations = 100
    config.mopo.eval_every = 10
    config.mopo.checkpoint_every = 10
    config.train.eval_every = 10_000
    config.train.checkpoint_every = 5_000
    return config


def smoke_scale(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Seconds per cell, for tests and CI: tiny networks, a few dozen updates,
    short evaluation episodes. Checks the machinery, never the method."""
    config.awac.hidden_dims = (32, 32)
    config.awac.num_quantiles = 8
    config.awac.batch_size = 32
    config.awac.num_advantage_samples = 3
    config.awac.loss_chunk_size = 32
    config.awac.num_steps = 20
    config.dynamics.num_steps = 10
    config.dynamics.batch_size = 16
    config.dynamics.num_members = 3
    config.dynamics.num_elites = 2
    config.dynamics.hidden_dims = (16, 16)
    config.dynamics.max_holdout = 50
    config.mb2po.num_iterations = 4
    config.mb2po.rollout_samples = 60
    config.mb2po.updates_per_iteration = 5
    config.mb2po.buffer_iterations = 3
    config.mb2po.block_size = 32
    config.mb2po.eval_every = 2
    config.mb2po.checkpoint_every = 2
    config.mopo.num_iterations = 4
    config.mopo.rollout_samples = 60
    config.mopo.updates_per_iteration = 5
    config.mopo.buffer_iterations = 3
    config.mopo.batch_size = 32
    config.mopo.block_size = 32
    config.mopo.eval_every = 2
    config.mopo.checkpoint_every = 2
    config.mopo.sac.hidden_dims = (32, 32)
    config.train.steps_per_chunk = 5
    config.train.eval_every = 10
    config.train.checkpoint_every = 10
    config.train.progress_bar = False
    config.train.tensorboard = False
    config.eval.num_episodes = 2
    config.eval.num_envs = 2
    config.eval.max_episode_steps = 30
    return config


SCALES: dict[str, Callable[[ml_collections.ConfigDict], ml_collections.ConfigDict]] = {
    "paper": paper_scale,
    "cpu": cpu_scale,
    "smoke": smoke_scale,
}



def check_field(config: ml_collections.ConfigDict, dotted: str) -> None:
    """Raises :class:`UsageError` unless ``dotted`` names a field of ``config``,
    listing the valid fields where the path breaks off."""
    node: Any = config
    walked = []
    for part in dotted.split("."):
        if not isinstance(node, ml_collections.ConfigDict) or part not in node:
            where = ".".join(walked) or "the config"
            choices = sorted(node.keys()) if isinstance(node, ml_collections.ConfigDict) else []
            raise UsageError(
                f"Unknown config field '--config.{dotted}': {where} has no field '{part}'. "
                f"Valid fields of {where}: {', '.join(choices)}."
            )
        walked.append(part)
        node = node[part]


# The environment variable that rescales any config loaded by a command line.
SCALE_ENV = "MB2PO_SCALE"


def apply_scale(config: ml_collections.ConfigDict, scale: str,
                overrides: dict[str, Any]) -> ml_collections.ConfigDict:
    """``config`` (a loaded config file) at ``scale`` (a name in
    :data:`SCALES`), with the command line's ``overrides`` (dotted field ->
    value) set again on top, so they still win.

    Raises:
        UsageError: an unknown scale, naming the valid ones.
    """
    if scale not in SCALES:
        raise UsageError(f"{SCALE_ENV}={scale!r}: valid scales are {sorted(SCALES)} "
                         f"(or leave it unset to run the config as it is).")
    SCALES[scale](config)
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = config
        for part in parents:
            node = node[part]
        node[leaf] = value
    logger.warning("%s=%s: applied mb2po_jax.pipeline.config.%s_scale to the config file "
                   "(then %d command-line override(s)).", SCALE_ENV, scale, scale, len(overrides))
    return config
