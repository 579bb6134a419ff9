"""D4RL-style Gym-MuJoCo datasets made locally with online SAC (paper section 5).

D4RL's datasets cannot be downloaded on every machine, and Minari's hosted
Gymnasium-v5 ports lack the random, medium-replay and medium-expert kinds, so
the project makes them itself the way D4RL did: train SAC
(:mod:`mb2po_jax.agents.sac`) online in a gymnasium MuJoCo env and record

* ``random``: rollouts of the *randomly initialised* SAC actor, with actions
  sampled from its tanh-Gaussian (as D4RL; not uniform noise: the initial
  actor's actions are tanh(N(~0, ~1)), more concentrated near 0 than uniform);
* ``medium``: rollouts (sampled actions) of the SAC actor at the first
  evaluation whose D4RL-normalised score reaches ``medium_target -
  medium_tolerance`` (default 33 - 5; a jump past the band is accepted and
  recorded, since SAC rarely comes back down);
* ``mixed`` (D4RL's medium-replay): every transition of the SAC replay buffer
  up to that evaluation (the random warm-up included);
* ``expert``: rollouts (sampled actions) of the fully trained actor: SAC runs
  to ``max_env_steps`` env steps (or until ``expert_target`` is reached), and
  the actor with the best evaluation (``expert_policy='best'``, default) or
  the last one (``'final'``) is used; the card records the score reached;
* ``medium-expert``: the medium dataset's episodes followed by the expert's.

random/medium/expert hold ``dataset_size`` transitions (D4RL: 1M); the last
episode, cut by the budget, is stored as a truncation. Datasets go to the
local Minari store as ``mb2po/<env>/<kind>-v0``
(:func:`registry.local_minari_id`), where :func:`registry.resolve_dataset`
looks first; terminations and truncations are kept apart; ``ref_min_score``
and ``ref_max_score`` are D4RL's references; the evaluation env spec is the
plain env id (its own 1000-step time limit). Each dataset gets a data card
(``data_card.json`` in its directory, written last: a dataset directory
without one is an interrupted write and is never silently reused).

SAC loop. Env steps run in Python, one jitted action per step; every
``update_every`` steps the new transitions go into a device-resident replay
buffer (fixed capacity ``max_env_steps``, updated in place through buffer
donation) and ``update_every`` SAC updates run as one jitted ``lax.scan``
(updates per env step = 1, after ``learning_starts`` env steps of the initial
actor). The actor is evaluated deterministically (``evaluation.evaluate``,
``eval_episodes`` episodes, fixed seeds) every ``eval_every`` env steps.

Randomness. Everything derives from ``seed``: jax keys are
``fold_in(PRNGKey(seed), stream)`` and env seeds ``SeedSequence([seed,
stream])``, one stream per use (init, actions, updates, SAC env, evaluation,
each kind's rollouts). The same seed gives the same datasets, bit for bit, on
the same machine and software.

Checkpoints and resume. The SAC run lives in a work directory (default: beside
the Minari store, ``<store>/../mb2po_behaviour/<env>-seed<seed>``): Orbax
checkpoints (:class:`mb2po_jax.checkpoint.Checkpointer`) of the SAC state, the
replay buffer and the medium/best actor snapshots, with JSON metadata (env
step counter, episode bookkeeping, evaluations, wall time and the env's
state), every ``checkpoint_every`` env steps, when the medium policy is found,
at the end, and on Ctrl-C. For MuJoCo envs the env state saved is MuJoCo's
full integration state (``mj_getState``), the TimeLimit's step count, the
env's RNG and the current observation, so a resumed run continues the
interrupted episode and produces exactly the data an uninterrupted run would.
Envs without MuJoCo state are instead reset at the resumed step (seeded from
``seed`` and the step), and the interrupted episode's last stored transition
is marked as a truncation. Behaviour policies are also saved on their own
under ``<workdir>/policies/<kind>/`` (:func:`load_behaviour_policy`).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import re
import time
from pathlib import Path
from typing import Any, Callable, Iterable, NamedTuple, Sequence

import flax.struct
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from minari.data_collector import EpisodeBuffer
from minari.storage.datasets_root_dir import get_dataset_path

from mb2po_jax.agents import sac as sac_lib
from mb2po_jax.checkpoint import Checkpointer, describe_differences
from mb2po_jax.data.loaders import minari_dataset_exists, minari_store_path
from mb2po_jax.data.minari_io import read_episode_buffers, write_minari_dataset
from mb2po_jax.data.registry import KINDS, local_minari_id
from mb2po_jax.envs import ENV_IDS, UNIT_ACTION_GYM_IDS, lookup_ref_scores
from mb2po_jax.transitions import Transitions
from mb2po_jax.evaluation import evaluate, normalized_score

logger = logging.getLogger(__name__)

D4RL_DATASET_SIZE = 1_000_000  # transitions in D4RL's random/medium/expert sets
ROLLOUT_KINDS = ("random", "medium", "expert")
CARD_FILE = "data_card.json"
CARD_VERSION = 1
# D4RL's names for the kinds (for the card).
_D4RL_KIND = {"mixed": "medium-replay"}

# Randomness streams (see the module doc).
_INIT, _ACT, _TRAIN, _SAC_ENV, _EVAL, _RESUME_ENV = 0, 1, 2, 3, 4, 5
_ROLLOUT_STREAM = {"random": 10, "medium": 11, "expert": 12}


class GenerationError(ValueError):
    """A setting or situation that stops dataset generation; the message names
    the option, its value and the fix."""


class InterruptedGeneration(Exception):
    """Ctrl-C during SAC training; a checkpoint was saved first."""

    def __init__(self, env_steps: int, workdir: Path) -> None:
        super().__init__(
            f"Interrupted SAC training at env step {env_steps}; saved a checkpoint in "
            f"{workdir}. Run the same command again to resume from there."
        )
        self.env_steps = env_steps


@dataclasses.dataclass(frozen=True)
class GenerationConfig:
    """Everything that decides the SAC run and the datasets.

    Defaults are D4RL's sizes and SAC's standard settings. Budgets and sizes
    are in environment steps (= transitions).
    """

    env_id: str
    seed: int = 0
    sac: sac_lib.SACConfig = sac_lib.SACConfig()
    batch_size: int = 256
    # SAC budget: the expert policy trains this long; also the replay buffer's
    # capacity, and the cap on the search for the medium policy.
    max_env_steps: int = 1_000_000
    learning_starts: int = 5_000
    update_every: int = 50
    eval_every: int = 5_000
    eval_episodes: int = 10
    medium_target: float = 33.0
    medium_tolerance: float = 5.0
    # Stop SAC early once an evaluation reaches this normalised score (None: never).
    expert_target: float | None = None
    expert_policy: str = "best"  # 'best' evaluated actor or the 'final' one
    checkpoint_every: int = 25_000
    keep_checkpoints: int = 2
    # (ref_min, ref_max) returns; None: D4RL's for hopper/halfcheetah/walker2d.
    ref_scores: tuple[float, float] | None = None
    # Transitions in each random/medium/expert dataset.
    dataset_size: int = D4RL_DATASET_SIZE

    def resolved_ref_scores(self) -> tuple[float, float] | None:
        if self.ref_scores is not None:
            return (float(self.ref_scores[0]), float(self.ref_scores[1]))
        return lookup_ref_scores(self.env_id)

    def run_identity(self) -> dict[str, Any]:
        """The settings a SAC run depends on (a resumed run must match them).
        Dataset sizes, checkpointing and display are not among them."""
        refs = self.resolved_ref_scores()
        return {
            "env_id": self.env_id,
            "seed": self.seed,
            "sac": self.sac.to_dict(),
            "batch_size": self.batch_size,
            "max_env_steps": self.max_env_steps,
            "learning_starts": self.learning_starts,
            "update_every": self.update_every,
            "eval_every": self.eval_every,
            "eval_episodes": self.eval_episodes,
            "medium_target": self.medium_target,
            "medium_tolerance": self.medium_tolerance,
            "expert_target": self.expert_target,
            "expert_policy": self.expert_policy,
            "ref_scores": None if refs is None else list(refs),
        }


# ----------------------------------------------------------------- validation


def expand_kinds(kinds: str | Iterable[str]) -> list[str]:
    """``'all'`` -> every kind; D4RL spellings (``medium-replay``,
    ``medium_expert``) -> the paper's. Raises GenerationError on unknown kinds."""
    if isinstance(kinds, str):
        kinds = [kinds]
    aliases = {"medium-replay": "mixed", "medium_replay": "mixed", "medium_expert": "medium-expert"}
    out: list[str] = []
    for kind in kinds:
        name = aliases.get(kind.strip().lower(), kind.strip().lower())
        if name == "all":
            chosen = list(KINDS)
        elif name in KINDS:
            chosen = [name]
        else:
            raise GenerationError(
                f"--kind={kind}: unknown dataset kind; valid kinds: {', '.join(KINDS)}, all "
                f"(the paper's 'mixed' is D4RL's 'medium-replay')."
            )
        out += [k for k in chosen if k not in out]
    return [k for k in KINDS if k in out]


def resolve_env(env: str) -> tuple[str, str]:
    """``'hopper'`` or a gymnasium id -> ``(name for dataset ids, env id)``.

    Raises:
        GenerationError: not a project env name nor a registered gymnasium id,
            listing the valid choices.
    """
    key = env.strip()
    if key.lower() in ENV_IDS:
        return key.lower(), ENV_IDS[key.lower()]
    for name, env_id in ENV_IDS.items():
        if env_id.lower() == key.lower():
            return name, env_id
    if key in gym.registry:
        # Dataset ids use the lower-case id without its version: Ant-v5 -> ant.
        return re.sub(r"-v\d+$", "", key).lower(), key
    raise GenerationError(
        f"--env={env}: unknown environment; valid: {', '.join(sorted(ENV_IDS))} (the "
        f"paper's, D4RL reference scores known), or any registered gymnasium MuJoCo id "
        f"with actions in [-1, 1]: {', '.join(UNIT_ACTION_GYM_IDS)}."
    )


@functools.lru_cache(maxsize=32)
def env_dims(env_id: str) -> tuple[int, int]:
    """(obs_dim, act_dim); raises GenerationError unless both spaces are flat
    Boxes and actions lie in [-1, 1] (the tanh policy's range)."""
    env = gym.make(env_id)
    try:
        obs_space, act_space = env.observation_space, env.action_space
        if not isinstance(obs_space, gym.spaces.Box) or len(obs_space.shape) != 1:
            raise GenerationError(
                f"--env={env_id}: observation space {obs_space} is not a flat Box; "
                f"choose an env with vector observations."
            )
        if not isinstance(act_space, gym.spaces.Box) or len(act_space.shape) != 1:
            raise GenerationError(
                f"--env={env_id}: action space {act_space} is not a flat Box; SAC here "
                f"needs continuous vector actions."
            )
        if not (np.all(act_space.low == -1.0) and np.all(act_space.high == 1.0)):
            raise GenerationError(
                f"--env={env_id}: actions span [{act_space.low.min()}, "
                f"{act_space.high.max()}], but datasets must have actions in [-1, 1] (the "
                f"tanh policy's range, and what evaluation runs); choose an env with "
                f"[-1, 1] actions: {', '.join(UNIT_ACTION_GYM_IDS)}."
            )
        return int(obs_space.shape[0]), int(act_space.shape[0])
    finally:
        env.close()


def validate_config(cfg: GenerationConfig, kinds: Sequence[str] = KINDS) -> None:
    """Fails fast, naming the option, on settings that would break later."""
    positive = {
        "batch_size": cfg.batch_size, "max_env_steps": cfg.max_env_steps,
        "update_every": cfg.update_every, "eval_every": cfg.eval_every,
        "eval_episodes": cfg.eval_episodes, "checkpoint_every": cfg.checkpoint_every,
        "keep_checkpoints": cfg.keep_checkpoints, "dataset_size": cfg.dataset_size,
    }
    for name, value in positive.items():
        if value < 1:
            raise GenerationError(f"--{name}={value}: must be >= 1.")
    if cfg.seed < 0:
        raise GenerationError(f"--seed={cfg.seed}: must be >= 0.")
    if cfg.learning_starts < 0:
        raise GenerationError(f"--learning_starts={cfg.learning_starts}: must be >= 0.")
    chunk = cfg.update_every
    for name in ("learning_starts", "eval_every", "checkpoint_every", "max_env_steps"):
        value = getattr(cfg, name)
        if value % chunk:
            raise GenerationError(
                f"--{name}={value} is not a multiple of --update_every={chunk}: SAC runs "
                f"in chunks of update_every env steps. Use a multiple of {chunk} (e.g. "
                f"{max(chunk, value // chunk * chunk)})."
            )
    if cfg.max_env_steps % cfg.eval_every:
        raise GenerationError(
            f"--max_env_steps={cfg.max_env_steps} is not a multiple of --eval_every="
            f"{cfg.eval_every}: the final policy must be evaluated. Use e.g. "
            f"{max(cfg.eval_every, cfg.max_env_steps // cfg.eval_every * cfg.eval_every)}."
        )
    if cfg.learning_starts >= cfg.max_env_steps:
        raise GenerationError(
            f"--learning_starts={cfg.learning_starts} must be below --max_env_steps="
            f"{cfg.max_env_steps}, or SAC never trains."
        )
    if cfg.expert_policy not in ("best", "final"):
        raise GenerationError(
            f"--expert_policy={cfg.expert_policy}: valid choices: best, final."
        )
    if cfg.medium_tolerance < 0:
        raise GenerationError(f"--medium_tolerance={cfg.medium_tolerance}: must be >= 0.")
    refs = cfg.resolved_ref_scores()
    if refs is not None and refs[0] == refs[1]:
        raise GenerationError(f"--ref_min_score and --ref_max_score must differ, got {refs}.")
    needs_sac = [k for k in kinds if k != "random"]
    if refs is None and needs_sac:
        raise GenerationError(
            f"No D4RL reference scores for {cfg.env_id}, so the medium threshold (a "
            f"normalised score) is undefined for kinds {needs_sac}; pass "
            f"--ref_min_score=<random policy return> and --ref_max_score=<expert return>."
        )


# ---------------------------------------------------------------- randomness


def stream_seed(seed: int, stream: int) -> int:
    """A 32-bit env seed for one use of randomness, independent across streams."""
    return int(np.random.SeedSequence([seed, stream]).generate_state(1)[0])


def _stream_key(seed: int, stream: int) -> jax.Array:
    return jax.random.fold_in(jax.random.PRNGKey(seed), stream)


# ------------------------------------------------------------- env state I/O


def _time_limit(env: gym.Env) -> gym.wrappers.TimeLimit | None:
    while isinstance(env, gym.Wrapper):
        if isinstance(env, gym.wrappers.TimeLimit):
            return env
        env = env.env
    return None


def _has_mujoco_state(env: gym.Env) -> bool:
    raw = env.unwrapped
    return hasattr(raw, "model") and hasattr(raw, "data") and "mujoco" in type(raw.model).__module__


def _save_env_state(env: gym.Env) -> dict[str, Any] | None:
    """MuJoCo's full integration state, the TimeLimit count and the env RNG."""
    if not _has_mujoco_state(env):
        return None
    import mujoco

    raw = env.unwrapped
    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    state = np.empty(mujoco.mj_stateSize(raw.model, spec))
    mujoco.mj_getState(raw.model, raw.data, state, spec)
    limit = _time_limit(env)
    return {
        "mujoco_integration_state": state.tolist(),
        "elapsed_steps": None if limit is None else int(limit._elapsed_steps),
        "np_random": raw.np_random.bit_generator.state,
    }


def _restore_env_state(env: gym.Env, saved: dict[str, Any]) -> None:
    import mujoco

    raw = env.unwrapped
    spec = mujoco.mjtState.mjSTATE_INTEGRATION
    state = np.asarray(saved["mujoco_integration_state"], dtype=np.float64)
    if state.size != mujoco.mj_stateSize(raw.model, spec):
        raise GenerationError(
            f"The checkpoint's MuJoCo state has {state.size} numbers but this "
            f"{env.spec.id if env.spec else 'env'} has {mujoco.mj_stateSize(raw.model, spec)}: "
            f"the env or MuJoCo version changed. Use a new --workdir."
        )
    mujoco.mj_setState(raw.model, raw.data, state, spec)
    # Recompute derived quantities (positions of bodies, ...) from the state.
    mujoco.mj_forward(raw.model, raw.data)
    limit = _time_limit(env)
    if limit is not None and saved.get("elapsed_steps") is not None:
        limit._elapsed_steps = int(saved["elapsed_steps"])
    rng = np.random.Generator(np.random.PCG64())
    rng.bit_generator.state = saved["np_random"]
    raw.np_random = rng


# -------------------------------------------------------------- replay buffer


def empty_buffer(capacity: int, obs_dim: int, act_dim: int) -> Transitions:
    """A zero-filled fixed-capacity buffer (float32 fields, 0/1 flags)."""
    # numpy then one transfer each: eager jnp.zeros would compile per shape.
    return jax.tree.map(jnp.asarray, Transitions(
        observations=np.zeros((capacity, obs_dim), np.float32),
        actions=np.zeros((capacity, act_dim), np.float32),
        rewards=np.zeros((capacity,), np.float32),
        next_observations=np.zeros((capacity, obs_dim), np.float32),
        terminals=np.zeros((capacity,), np.float32),
        timeouts=np.zeros((capacity,), np.float32),
    ))


def _insert_impl(buffer: Transitions, rows: Transitions, start: jax.Array) -> Transitions:
    return jax.tree.map(
        lambda column, new: jax.lax.dynamic_update_slice_in_dim(
            column, new.astype(column.dtype), start, 0),
        buffer, rows,
    )


# The buffer is donated: XLA writes the new rows in place instead of copying
# the whole (up to 1M-row) buffer every chunk.
insert_rows = jax.jit(_insert_impl, donate_argnums=0)


@flax.struct.dataclass
class GenerationState:
    """The checkpointed arrays of a SAC run."""

    sac: sac_lib.SACState
    buffer: Transitions  # capacity rows; rows [0, env_steps) are filled
    medium_actor: dict  # actor snapshot at the medium evaluation (init until then)
    best_actor: dict  # best-evaluated actor (init until the first evaluation)


def _init_state(agent: sac_lib.SAC, key: jax.Array, capacity: int, obs_dim: int, act_dim: int,
                sac_state: sac_lib.SACState | None = None) -> GenerationState:
    """A fresh run's state (``sac_state``: ``agent.init(key)``, if already made)."""
    if sac_state is None:
        sac_state = agent.init(key)
    return GenerationState(
        sac=sac_state,
        buffer=empty_buffer(capacity, obs_dim, act_dim),
        medium_actor=sac_state.actor_params,
        best_actor=sac_state.actor_params,
    )


class _Compiled(NamedTuple):
    agent: sac_lib.SAC
    init: Callable  # key -> SACState (jitted agent.init)
    sample: Callable  # (params, obs, key, t) -> a ~ pi(.|obs), key fold_in(key, t)
    act: Callable  # (params, obs) -> deterministic action


# One agent and its jitted functions per architecture, so that several runs in
# one process (tests, --kind=all) compile once.
_COMPILED: dict[tuple, _Compiled] = {}


def _make_sampler(agent: sac_lib.SAC) -> Callable:
    return jax.jit(lambda params, obs, key, t: agent.sample_actions(
        params, obs, jax.random.fold_in(key, t)))


def _compiled(obs_dim: int, act_dim: int, sac_config: sac_lib.SACConfig) -> _Compiled:
    key = (obs_dim, act_dim, sac_config)
    if key not in _COMPILED:
        agent = sac_lib.make_sac(obs_dim, act_dim, sac_config)
        _COMPILED[key] = _Compiled(agent, jax.jit(agent.init), _make_sampler(agent),
                                   jax.jit(agent.act))
    return _COMPILED[key]


@functools.lru_cache(maxsize=8)
def _train_steps(obs_dim: int, act_dim: int, sac_config: sac_lib.SACConfig, batch_size: int,
                 update_every: int) -> Callable:
    agent = _compiled(obs_dim, act_dim, sac_config).agent
    return sac_lib.make_train_steps(agent.update, batch_size, update_every)


def build_agent(cfg: GenerationConfig) -> tuple[sac_lib.SAC, int, int]:
    obs_dim, act_dim = env_dims(cfg.env_id)
    return _compiled(obs_dim, act_dim, cfg.sac).agent, obs_dim, act_dim


def initial_actor(cfg: GenerationConfig):
    """The randomly initialised SAC actor of ``cfg.seed`` (the random policy)."""
    obs_dim, act_dim = env_dims(cfg.env_id)
    return _compiled(obs_dim, act_dim, cfg.sac).init(_stream_key(cfg.seed, _INIT)).actor_params


def _sampler(agent: sac_lib.SAC) -> Callable:
    """Jitted ``(params, obs, key, t) -> a ~ pi(.|obs)`` with the key ``fold_in(key, t)``."""
    for compiled in _COMPILED.values():
        if compiled.agent is agent:
            return compiled.sample
    return _make_sampler(agent)


def _actor(agent: sac_lib.SAC) -> Callable:
    for compiled in _COMPILED.values():
        if compiled.agent is agent:
            return compiled.act
    return jax.jit(agent.act)


def _evaluate(act_fn, params, cfg: GenerationConfig) -> dict[str, Any]:
    return evaluate(
        lambda obs: np.asarray(act_fn(params, obs)),
        cfg.env_id,
        cfg.eval_episodes,
        seed=stream_seed(cfg.seed, _EVAL),
        ref_scores=cfg.resolved_ref_scores(),
    )


def _eval_summary(result: dict[str, Any], env_steps: int) -> dict[str, Any]:
    return {
        "env_steps": int(env_steps),
        "normalized_score": result["normalized_score"],
        "return_mean": result["return_mean"],
        "return_std": result["return_std"],
        "episode_length_mean": result["episode_length_mean"],
        "num_episodes": result["num_episodes"],
    }


# ------------------------------------------------------------ the SAC run


@dataclasses.dataclass
class BehaviourRun:
    """What a (possibly resumed, possibly finished earlier) SAC run yields."""

    agent: sac_lib.SAC
    config: GenerationConfig
    workdir: Path
    init_actor: Any
    env_steps: int
    wall_seconds: float  # SAC time, cumulative over sessions
    medium: dict[str, Any] | None  # {'env_steps', 'eval', 'wall_seconds', 'in_band'}
    medium_actor: Any
    expert: dict[str, Any] | None  # {'env_steps', 'eval', 'wall_seconds', 'policy'}
    expert_actor: Any
    buffer: Transitions  # device buffer (capacity rows)
    evals: list[dict[str, Any]]
    speed: dict[str, float]
    episodes: dict[str, int]

    def mixed_rows(self) -> dict[str, np.ndarray]:
        """The replay buffer up to the medium policy, as host arrays."""
        if self.medium is None:
            raise GenerationError("The SAC run has not reached the medium policy yet.")
        n = int(self.medium["env_steps"])
        return {field: np.asarray(getattr(self.buffer, field)[:n]) for field in
                ("observations", "actions", "rewards", "next_observations", "terminals", "timeouts")}


class _Timer:
    def __init__(self) -> None:
        self.seconds = 0.0

    def __enter__(self):
        self._start = time.perf_counter()

    def __exit__(self, *exc):
        self.seconds += time.perf_counter() - self._start


def _progress(enabled: bool, total: int, initial: int, desc: str, unit: str = "step"):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True,
                smoothing=0.05, disable=not enabled)


def _check_same_run(saved: dict[str, Any], current: dict[str, Any], workdir: Path) -> None:
    lines = describe_differences(json.loads(json.dumps(saved)), json.loads(json.dumps(current)))
    if lines:
        raise GenerationError(
            f"Workdir {workdir} holds a SAC run with different settings:\n{lines}"
            f"Resume it with the same options, or pass --workdir=<new directory> (or "
            f"another --seed) to start a separate SAC run."
        )


def train_behaviour(
    cfg: GenerationConfig, workdir: str | Path, until: str, *, progress: bool = True,
) -> BehaviourRun:
    """Trains (or resumes) SAC until the medium policy is found or the expert
    budget is spent.

    Args:
        until: ``'medium'`` (stop at the first evaluation in or above the
            medium band) or ``'expert'`` (train to ``max_env_steps``, or until
            ``expert_target``).

    Raises:
        GenerationError: bad settings, a workdir of another run, or the medium
            band not reached within ``max_env_steps``.
        InterruptedGeneration: Ctrl-C (a checkpoint was saved).
    """
    if until not in ("medium", "expert"):
        raise ValueError(f"until must be 'medium' or 'expert', got {until!r}")
    validate_config(cfg, [until])
    run = _SACRun(cfg, Path(workdir).expanduser().absolute())
    try:
        return run.train(until, progress)
    finally:
        run.close()


class _SACRun:
    """The mutable side of one SAC run: env, arrays, bookkeeping, checkpoints.

    A chunk (``update_every`` env steps, then as many updates) is the unit of
    progress: its results are *committed* together at its end, and a
    checkpoint always holds committed values only, so Ctrl-C at any point
    saves a consistent state.
    """

    def __init__(self, cfg: GenerationConfig, workdir: Path) -> None:
        self.cfg, self.workdir = cfg, workdir
        self.session_start = time.time()
        self.agent, self.obs_dim, self.act_dim = build_agent(cfg)
        self.init_key = _stream_key(cfg.seed, _INIT)
        self.init_sac = _compiled(self.obs_dim, self.act_dim, cfg.sac).init(self.init_key)
        self.init_actor = self.init_sac.actor_params
        self.sample_fn, self.act_fn = _sampler(self.agent), _actor(self.agent)
        self.train_steps = _train_steps(self.obs_dim, self.act_dim, cfg.sac, cfg.batch_size,
                                        cfg.update_every)
        self.act_key, self.train_key = _stream_key(cfg.seed, _ACT), _stream_key(cfg.seed, _TRAIN)
        self.band = (cfg.medium_target - cfg.medium_tolerance,
                     cfg.medium_target + cfg.medium_tolerance)
        self.env = gym.make(cfg.env_id)
        self.checkpointer = Checkpointer(workdir / "checkpoints", cfg.keep_checkpoints)
        self.chunks_this_session = 0
        self.policies_saved: set[str] = set()
        if self.checkpointer.latest_step() is not None:
            self._resume()
        else:
            self._start()
        self.wall_before = float(self.meta["wall_seconds"])
        self.saved_wall = self.wall_before  # SAC time in the newest checkpoint
        self.committed = self._commit_point()

    # ---------------------------------------------------------------- setup

    def _abstract_state(self):
        cfg = self.cfg
        return jax.eval_shape(lambda: _init_state(
            self.agent, self.init_key, cfg.max_env_steps, self.obs_dim, self.act_dim))

    def _start(self) -> None:
        cfg = self.cfg
        state = _init_state(self.agent, self.init_key, cfg.max_env_steps, self.obs_dim,
                            self.act_dim, sac_state=self.init_sac)
        self.sac_state, self.buffer = state.sac, state.buffer
        self.medium_actor, self.best_actor = state.medium_actor, state.best_actor
        self.env_steps = 0
        self.obs, _ = self.env.reset(seed=stream_seed(cfg.seed, _SAC_ENV))
        self.episode_return, self.episode_length = 0.0, 0
        self.meta = {
            "config": cfg.run_identity(), "medium": None, "best": None, "expert": None,
            "evals": [], "episode_log": [], "wall_seconds": 0.0, "last_eval_step": 0,
            "speed": {"env_seconds": 0.0, "update_seconds": 0.0, "eval_seconds": 0.0,
                      "env_steps": 0, "updates": 0},
        }
        _save_policy(self.workdir, "random", self.init_actor, self.cfg, self.obs_dim,
                     self.act_dim, {"env_steps": 0, "eval": None})

    def _resume(self) -> None:
        cfg = self.cfg
        _check_same_run(self.checkpointer.restore_meta()["config"], cfg.run_identity(),
                        self.workdir)
        state, meta = self.checkpointer.restore(self._abstract_state())
        self.sac_state, self.buffer = state.sac, state.buffer
        self.medium_actor, self.best_actor = state.medium_actor, state.best_actor
        self.meta = meta
        self.env_steps = int(meta["env_steps"])
        self.obs, _ = self.env.reset(seed=stream_seed(cfg.seed, _SAC_ENV))
        if meta["env_state"] is not None and _has_mujoco_state(self.env):
            _restore_env_state(self.env, meta["env_state"])
            self.obs = np.asarray(meta["obs"], dtype=np.float64)
            self.episode_return = float(meta["episode_return"])
            self.episode_length = int(meta["episode_length"])
        else:
            # No exact env state: a new episode starts here, and the
            # interrupted one ends in a truncation.
            self.obs, _ = self.env.reset(
                seed=stream_seed(cfg.seed, _RESUME_ENV * 1_000_003 + self.env_steps))
            if self.env_steps > 0 and int(meta["episode_length"]) > 0:
                self.buffer = self.buffer.replace(
                    timeouts=self.buffer.timeouts.at[self.env_steps - 1].set(1.0))
                meta["episode_log"].append(
                    [self.env_steps, meta["episode_return"], meta["episode_length"], 0])
            self.episode_return, self.episode_length = 0.0, 0
        logger.info("Resuming SAC in %s from env step %d (%s).", cfg.env_id, self.env_steps,
                    self.checkpointer.directory)

    def close(self) -> None:
        self.checkpointer.close()
        self.env.close()

    # ---------------------------------------------------------- bookkeeping

    def _commit_point(self) -> dict[str, Any]:
        return {
            "env_steps": self.env_steps,
            "sac_state": self.sac_state,
            "env_state": _save_env_state(self.env),
            "obs": self.obs.tolist(),
            "episode_return": self.episode_return,
            "episode_length": self.episode_length,
            "num_logged": len(self.meta["episode_log"]),
        }

    def wall(self) -> float:
        if self.chunks_this_session == 0:
            return self.wall_before
        return self.wall_before + time.time() - self.session_start

    def save(self) -> None:
        """Checkpoints the last committed chunk (plus evaluations since)."""
        c = self.committed
        if any(leaf.is_deleted() for leaf in jax.tree.leaves(self.buffer)):
            logger.warning("Interrupted inside a buffer update; the last checkpoint "
                           "(%s) is kept.", self.checkpointer.latest_step())
            return
        meta = {k: v for k, v in self.meta.items() if k != "episode_log"}
        meta.update(
            env_steps=c["env_steps"], env_state=c["env_state"], obs=c["obs"],
            episode_return=c["episode_return"], episode_length=c["episode_length"],
            episode_log=self.meta["episode_log"][: c["num_logged"]],
            wall_seconds=self.wall(),
        )
        state = GenerationState(sac=c["sac_state"], buffer=self.buffer,
                                medium_actor=self.medium_actor, best_actor=self.best_actor)
        self.checkpointer.save(c["env_steps"], state, meta)
        self.saved_wall = meta["wall_seconds"]

    def finished(self, until: str) -> bool:
        return self.meta["medium" if until == "medium" else "expert"] is not None

    # ------------------------------------------------------------- evaluation

    def evaluate_and_snapshot(self, log, bar) -> bool:
        """Evaluates the actor at a committed step; returns whether a snapshot
        (medium or expert) was taken."""
        cfg, meta, step = self.cfg, self.meta, self.env_steps
        timer = _Timer()
        with timer:
            result = _evaluate(self.act_fn, self.sac_state.actor_params, cfg)
        summary = _eval_summary(result, step)
        score = summary["normalized_score"]
        lo, hi = self.band
        updates: dict[str, Any] = {}
        if meta["best"] is None or score > meta["best"]["eval"]["normalized_score"]:
            updates["best"] = {"env_steps": step, "eval": summary}
            self.best_actor = self.sac_state.actor_params
        best = updates.get("best", meta["best"])
        if meta["medium"] is None and score >= lo:
            updates["medium"] = {"env_steps": step, "eval": summary, "in_band": score <= hi,
                                 "band": [lo, hi], "wall_seconds": self.wall()}
            self.medium_actor = self.sac_state.actor_params
        if meta["expert"] is None and (step >= cfg.max_env_steps or (
                cfg.expert_target is not None and score >= cfg.expert_target)):
            chosen = best if cfg.expert_policy == "best" else {"env_steps": step, "eval": summary}
            updates["expert"] = {**chosen, "policy": cfg.expert_policy,
                                 "trained_env_steps": step, "wall_seconds": self.wall()}
        # Commit the evaluation in one go.
        meta.update(updates)
        meta["evals"].append(summary)
        meta["last_eval_step"] = step
        meta["speed"]["eval_seconds"] += timer.seconds

        train_means = {k: float(np.mean([m[k] for m in self.chunk_metrics]))
                       for k in (self.chunk_metrics[0] if self.chunk_metrics else {})}
        self.chunk_metrics = []
        _check_finite(train_means, step)
        recent = meta["episode_log"][-10:]
        log.write(step, {**train_means, "episode_return_recent": (
            float(np.mean([e[1] for e in recent])) if recent else None)}, "train")
        log.write(step, {k: v for k, v in summary.items() if k != "env_steps"}, "eval")
        note = ""
        if "medium" in updates:
            note = " -> medium policy"
            if score > hi:
                logger.warning(
                    "SAC jumped past the medium band [%.1f, %.1f]: the first score at or above "
                    "%.1f is %.1f (env step %d); using it as the medium policy. Evaluate more "
                    "often (--eval_every) for a closer match.", lo, hi, lo, score, step)
        if "expert" in updates:
            note += f" -> expert policy ({cfg.expert_policy}: step {updates['expert']['env_steps']})"
        bar.write(f"eval @ {step}: return {summary['return_mean']:.1f}, normalized score "
                  f"{score:.1f} (best {best['eval']['normalized_score']:.1f}){note}")
        bar.set_postfix(score=f"{score:.1f}", best=f"{best['eval']['normalized_score']:.1f}")
        self._save_policies()
        return "medium" in updates or "expert" in updates

    def expert_actor(self):
        if self.meta["expert"] is None:
            return None
        return self.best_actor if self.meta["expert"]["policy"] == "best" else self.sac_state.actor_params

    def _save_policies(self) -> None:
        """Behaviour-policy checkpoints (a no-op for ones already saved)."""
        for kind, actor in (("medium", self.medium_actor), ("expert", self.expert_actor())):
            if self.meta[kind] is not None and kind not in self.policies_saved:
                self.policies_saved.add(kind)
                _save_policy(self.workdir, kind, actor, self.cfg, self.obs_dim, self.act_dim,
                             self.meta[kind])

    # ------------------------------------------------------------------ chunk

    def run_chunk(self, stage: dict[str, np.ndarray]) -> None:
        cfg, U = self.cfg, self.cfg.update_every
        speed = self.meta["speed"]
        timer, new_log = _Timer(), []
        obs, env, params = self.obs, self.env, self.sac_state.actor_params
        with timer:
            for j in range(U):
                t = self.env_steps + j
                obs32 = obs.astype(np.float32)
                action = np.asarray(self.sample_fn(params, obs32, self.act_key, t))
                next_obs, reward, terminated, truncated, _ = env.step(action)
                stage["observations"][j] = obs32
                stage["actions"][j] = action
                stage["rewards"][j] = reward
                stage["next_observations"][j] = next_obs
                stage["terminals"][j] = float(terminated)
                stage["timeouts"][j] = float(truncated and not terminated)
                self.episode_return += float(reward)
                self.episode_length += 1
                if terminated or truncated:
                    new_log.append([t + 1, self.episode_return, self.episode_length,
                                    int(terminated)])
                    next_obs, _ = env.reset()
                    self.episode_return, self.episode_length = 0.0, 0
                obs = next_obs
        self.obs = obs
        speed["env_seconds"] += timer.seconds
        speed["env_steps"] += U
        self.meta["episode_log"].extend(new_log)
        # Rows past the committed step are invisible to a checkpoint's
        # bookkeeping (and rewritten identically on resume).
        self.buffer = insert_rows(self.buffer, Transitions(**stage), self.env_steps)
        new_steps = self.env_steps + U
        new_sac = self.sac_state
        if new_steps > cfg.learning_starts:
            timer = _Timer()
            with timer:
                new_sac, metrics = self.train_steps(
                    self.sac_state, self.buffer, jnp.int32(new_steps),
                    jax.random.fold_in(self.train_key, new_steps // U))
                metrics = {k: float(v) for k, v in jax.device_get(metrics).items()}
            speed["update_seconds"] += timer.seconds
            speed["updates"] += U
            self.chunk_metrics.append(metrics)
        self.sac_state, self.env_steps = new_sac, new_steps
        self.chunks_this_session += 1
        self.committed = self._commit_point()

    # ------------------------------------------------------------------- loop

    def train(self, until: str, progress: bool) -> BehaviourRun:
        cfg, U = self.cfg, self.cfg.update_every
        lo = self.band[0]
        stage = {
            "observations": np.zeros((U, self.obs_dim), np.float32),
            "actions": np.zeros((U, self.act_dim), np.float32),
            "rewards": np.zeros((U,), np.float32),
            "next_observations": np.zeros((U, self.obs_dim), np.float32),
            "terminals": np.zeros((U,), np.float32),
            "timeouts": np.zeros((U,), np.float32),
        }
        self.chunk_metrics: list[dict[str, float]] = []
        from mb2po_jax.metrics_logger import MetricsLogger

        desc = f"SAC {cfg.env_id} -> {until}" + (" (ETA to the budget)" if until == "medium" else "")
        with MetricsLogger(self.workdir / "sac", resume_step=self.env_steps,
                           use_tensorboard=False) as log, \
                _progress(progress, cfg.max_env_steps, self.env_steps, desc) as bar:
            try:
                while True:
                    snapshot = False
                    if (self.env_steps > 0 and self.env_steps % cfg.eval_every == 0
                            and self.meta["last_eval_step"] != self.env_steps):
                        snapshot = self.evaluate_and_snapshot(log, bar)
                    if self.env_steps > 0 and (snapshot or self.finished(until)
                                               or self.env_steps % cfg.checkpoint_every == 0):
                        self.save()
                    if self.finished(until):
                        break
                    if self.env_steps >= cfg.max_env_steps:
                        best = self.meta["best"]
                        raise GenerationError(
                            f"SAC did not reach the medium band (normalised score >= {lo:.1f}) "
                            f"within --max_env_steps={cfg.max_env_steps} env steps; the best "
                            f"evaluation was {best['eval']['normalized_score']:.1f} at env step "
                            f"{best['env_steps']}. Raise --max_env_steps (with a new --workdir) "
                            f"or lower --medium_target.")
                    self.run_chunk(stage)
                    bar.update(U)
                log.flush()
            except KeyboardInterrupt:
                self.save()
                raise InterruptedGeneration(self.committed["env_steps"], self.workdir) from None
        self._save_policies()
        speed = _speed_summary(self.meta["speed"])
        logger.info("SAC %s at env step %d: %s", cfg.env_id, self.env_steps, _speed_line(speed))
        log_rows = self.meta["episode_log"]
        meta = self.meta
        return BehaviourRun(
            agent=self.agent, config=cfg, workdir=self.workdir, init_actor=self.init_actor,
            env_steps=self.env_steps, wall_seconds=self.saved_wall, medium=meta["medium"],
            medium_actor=self.medium_actor if meta["medium"] else None,
            expert=meta["expert"], expert_actor=self.expert_actor(), buffer=self.buffer,
            evals=list(meta["evals"]), speed=speed,
            episodes={"completed": len(log_rows),
                      "terminated": int(sum(e[3] for e in log_rows)),
                      "truncated": int(sum(1 - e[3] for e in log_rows))},
        )


def _check_finite(metrics: dict[str, float], env_steps: int) -> None:
    bad = [k for k, v in metrics.items() if not np.isfinite(v)]
    if bad:
        raise GenerationError(
            f"SAC diverged before env step {env_steps}: non-finite "
            f"{', '.join(f'{k}={metrics[k]}' for k in bad)}. The last good checkpoint is "
            f"kept; lower the learning rates (SACConfig) or check the env's rewards."
        )


def _speed_summary(speed: dict[str, float]) -> dict[str, float]:
    def rate(n, s):
        return float(n / s) if s > 0 else None

    return {
        "env_steps_per_second": rate(speed["env_steps"], speed["env_seconds"]),
        "updates_per_second": rate(speed["updates"], speed["update_seconds"]),
        "overall_env_steps_per_second": rate(
            speed["env_steps"], speed["env_seconds"] + speed["update_seconds"] + speed["eval_seconds"]),
        "env_seconds": speed["env_seconds"],
        "update_seconds": speed["update_seconds"],
        "eval_seconds": speed["eval_seconds"],
    }


def _speed_line(s: dict[str, float]) -> str:
    def fmt(v):
        return "n/a" if v is None else f"{v:.0f}"

    return (f"{fmt(s['env_steps_per_second'])} env steps/s (acting + stepping), "
            f"{fmt(s['updates_per_second'])} SAC updates/s, "
            f"{fmt(s['overall_env_steps_per_second'])} env steps/s overall")


# ------------------------------------------------------- behaviour policies


def _save_policy(workdir: Path, kind: str, actor_params, cfg: GenerationConfig,
                 obs_dim: int, act_dim: int, info: dict[str, Any]) -> None:
    """Saves one behaviour policy under ``<workdir>/policies/<kind>/`` (kept
    once: a policy already saved at that step is left as it is)."""
    meta = {"kind": kind, "env_id": cfg.env_id, "seed": cfg.seed, "sac": cfg.sac.to_dict(),
            "obs_dim": obs_dim, "act_dim": act_dim, **info}
    with Checkpointer(workdir / "policies" / kind, max_to_keep=1) as checkpointer:
        checkpointer.save(int(info.get("env_steps") or 0), actor_params, meta)


def load_behaviour_policy(workdir: str | Path, kind: str) -> tuple[sac_lib.SAC, Any, dict]:
    """Restores a behaviour policy (``random``, ``medium`` or ``expert``) saved by
    a SAC run: ``(agent, actor_params, meta)``; ``agent.act`` / ``agent.sample_actions``
    run it."""
    directory = Path(workdir).expanduser().absolute() / "policies" / kind
    with Checkpointer(directory, max_to_keep=1) as checkpointer:
        meta = checkpointer.restore_meta()
        agent = sac_lib.make_sac(meta["obs_dim"], meta["act_dim"],
                                 sac_lib.SACConfig.from_dict(meta["sac"]))
        abstract = jax.eval_shape(lambda: agent.init(jax.random.PRNGKey(0)).actor_params)
        params, meta = checkpointer.restore(abstract)
    return agent, params, meta


# ------------------------------------------------------------ rollouts


def collect_rollouts(
    agent: sac_lib.SAC, actor_params, env_id: str, num_steps: int, *, env_seed: int,
    key: jax.Array, desc: str = "rollouts", progress: bool = True,
) -> dict[str, np.ndarray]:
    """``num_steps`` env steps of the policy with sampled actions a ~ pi(.|s).

    The env is reset with ``env_seed`` once; later resets continue its RNG.
    The step-t action uses ``fold_in(key, t)``. The last episode, cut by the
    budget, ends in a truncation. Returns per-step arrays (float32 values,
    bool flags).
    """
    sample_fn = _sampler(agent)
    env = gym.make(env_id)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    out = {
        "observations": np.zeros((num_steps, obs_dim), np.float32),
        "actions": np.zeros((num_steps, act_dim), np.float32),
        "rewards": np.zeros((num_steps,), np.float64),
        "next_observations": np.zeros((num_steps, obs_dim), np.float32),
        "terminals": np.zeros((num_steps,), bool),
        "timeouts": np.zeros((num_steps,), bool),
    }
    try:
        obs, _ = env.reset(seed=env_seed)
        with _progress(progress, num_steps, 0, desc) as bar:
            for t in range(num_steps):
                obs32 = obs.astype(np.float32)
                action = np.asarray(sample_fn(actor_params, obs32, key, t))
                next_obs, reward, terminated, truncated, _ = env.step(action)
                out["observations"][t] = obs32
                out["actions"][t] = action
                out["rewards"][t] = reward
                out["next_observations"][t] = next_obs
                out["terminals"][t] = terminated
                out["timeouts"][t] = truncated and not terminated
                if terminated or truncated:
                    next_obs, _ = env.reset()
                obs = next_obs
                if t % 1000 == 999:
                    bar.update(1000)
            bar.update(num_steps - bar.n)
    finally:
        env.close()
    return out


def split_episodes(
    rows: dict[str, np.ndarray], first_seed: int | None = None
) -> tuple[list[EpisodeBuffer], bool]:
    """Per-step rows -> Minari episodes (T + 1 observations for T steps).

    Episodes end at a terminal or a truncation; if the last row ends neither,
    the data stops mid-episode and that row is stored as a truncation (its s'
    is known and bootstraps). Returns ``(episodes, last_episode_was_cut)``.
    """
    terminals = np.asarray(rows["terminals"]).astype(bool)
    timeouts = np.asarray(rows["timeouts"]).astype(bool).copy()
    n = len(terminals)
    cut = n > 0 and not (terminals[-1] or timeouts[-1])
    if cut:
        timeouts[-1] = True
    ends = np.flatnonzero(terminals | timeouts)
    obs, next_obs = rows["observations"], rows["next_observations"]
    episodes, start = [], 0
    for i, end in enumerate(ends):
        stop = int(end) + 1
        episodes.append(EpisodeBuffer(
            id=i,
            seed=first_seed if i == 0 else None,
            observations=np.concatenate([obs[start:stop], next_obs[stop - 1:stop]]),
            actions=np.asarray(rows["actions"][start:stop]),
            rewards=np.asarray(rows["rewards"][start:stop], dtype=np.float64),
            terminations=terminals[start:stop].copy(),
            truncations=timeouts[start:stop].copy(),
        ))
        start = stop
    return episodes, bool(cut)


def _episode_stats(episodes: Sequence[EpisodeBuffer], cut_last: bool,
                   env_id: str, refs) -> dict[str, Any]:
    returns = np.array([float(np.sum(e.rewards)) for e in episodes])
    lengths = np.array([len(e.rewards) for e in episodes])
    complete = returns[:-1] if cut_last and len(returns) > 1 else returns
    stats = {
        "episodes": int(len(episodes)),
        "terminated_episodes": int(sum(bool(e.terminations[-1]) for e in episodes)),
        "truncated_episodes": int(sum(bool(e.truncations[-1]) for e in episodes)),
        "last_episode_cut_by_size": bool(cut_last),
        "episode_length_mean": float(np.mean(lengths)) if len(lengths) else None,
        "return_mean": float(np.mean(complete)) if len(complete) else None,
        "return_std": float(np.std(complete)) if len(complete) else None,
        "return_min": float(np.min(complete)) if len(complete) else None,
        "return_max": float(np.max(complete)) if len(complete) else None,
        "returns_over": ("complete episodes (the budget-cut last one left out)"
                         if cut_last and len(returns) > 1 else "all episodes"),
    }
    if refs is not None and len(complete):
        norm = normalized_score(env_id, complete, ref_scores=refs)
        stats["normalized_return_mean"] = float(np.mean(norm))
        stats["normalized_return_min"] = float(np.min(norm))
        stats["normalized_return_max"] = float(np.max(norm))
    else:
        stats["normalized_return_mean"] = None
    return stats


# ------------------------------------------------------------ writing


def dataset_card_path(dataset_id: str) -> Path:
    return get_dataset_path(dataset_id) / CARD_FILE


def read_card(dataset_id: str) -> dict[str, Any] | None:
    path = dataset_card_path(dataset_id)
    return json.loads(path.read_text()) if path.is_file() else None


@dataclasses.dataclass(frozen=True)
class MadeKind:
    """One dataset: its id, directory, data card, and whether it already existed."""

    kind: str
    dataset_id: str
    path: Path
    card: dict[str, Any]
    reused: bool


def default_workdir(env_name: str, seed: int) -> Path:
    """Beside the Minari store: ``<store>/../mb2po_behaviour/<env>-seed<seed>``."""
    return minari_store_path().parent / "mb2po_behaviour" / f"{env_name}-seed{seed}"


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for package in ("jax", "flax", "mujoco", "gymnasium", "minari"):
        try:
            out[package] = md.version(package)
        except md.PackageNotFoundError:
            out[package] = "unknown"
    return out


def make_datasets(
    cfg: GenerationConfig, kinds: str | Iterable[str], *, env_name: str | None = None,
    workdir: str | Path | None = None, overwrite: bool = False, progress: bool = True,
) -> dict[str, MadeKind]:
    """Makes (or reuses) the datasets of ``kinds`` from one SAC run.

    An existing dataset (with its data card) is reused and reported, never
    overwritten unless ``overwrite``; one without a card (an interrupted
    write, or made by something else) is refused unless ``overwrite``.
    ``medium-expert`` is built from the medium and expert datasets, making
    whichever of them is missing.

    Args:
        cfg: the SAC run's and the datasets' settings.
        kinds: kinds or ``'all'``.
        env_name: name in the dataset ids (default: from ``cfg.env_id``).
        workdir: the SAC run's directory (default :func:`default_workdir`).

    Returns:
        ``{kind: MadeKind}`` for every kind asked for (and any made on the way).
    """
    kinds = expand_kinds(kinds)
    validate_config(cfg, kinds)
    if env_name is None:
        env_name = resolve_env(cfg.env_id)[0]
    env_dims(cfg.env_id)
    workdir = Path(workdir).expanduser().absolute() if workdir else default_workdir(env_name, cfg.seed)
    refs = cfg.resolved_ref_scores()
    ids = {k: local_minari_id(env_name, k) for k in KINDS}

    def status(kind: str) -> str:
        if not minari_dataset_exists(ids[kind]):
            return "missing"
        return "complete" if read_card(ids[kind]) is not None else "no-card"

    results: dict[str, MadeKind] = {}
    todo = []
    for kind in kinds:
        state = status(kind)
        if state == "missing" or overwrite:
            todo.append(kind)
        elif state == "no-card":
            raise GenerationError(
                f"Minari dataset '{ids[kind]}' exists at {get_dataset_path(ids[kind])} but has "
                f"no {CARD_FILE}: its writing was interrupted, or it was not made by "
                f"experiments.make_dataset. Pass --overwrite to remake it."
            )
        else:
            card = read_card(ids[kind])
            logger.info("Dataset %s exists (%d transitions, %s episodes, made %s); reusing it "
                        "(--overwrite remakes it).", ids[kind], card["size"], card["episodes"],
                        card.get("created", "?"))
            results[kind] = MadeKind(kind, ids[kind], get_dataset_path(ids[kind]), card, True)
    make = list(todo)
    if "medium-expert" in todo:
        for part in ("medium", "expert"):
            if part not in make and status(part) != "complete":
                logger.info("medium-expert needs the %s dataset %s: making it too.", part, ids[part])
                make.append(part)
    make = [k for k in KINDS if k in make]
    if not make:
        return results

    until = "expert" if "expert" in make else ("medium" if {"medium", "mixed"} & set(make) else None)
    run = train_behaviour(cfg, workdir, until, progress=progress) if until else None
    agent = run.agent if run else build_agent(cfg)[0]
    base_card = {
        "card_version": CARD_VERSION, "env_id": cfg.env_id, "seed": cfg.seed,
        "ref_min_score": None if refs is None else refs[0],
        "ref_max_score": None if refs is None else refs[1],
        "generator": "mb2po_jax.data.generation (python -m experiments.make_dataset)",
        "behaviour_workdir": str(workdir), "software": _versions(),
        "sac_hyperparameters": {**cfg.sac.to_dict(), "batch_size": cfg.batch_size,
                                "learning_starts": cfg.learning_starts,
                                "updates_per_env_step": 1, "update_every": cfg.update_every,
                                "target_entropy": agent.target_entropy},
    }

    def updates_at(env_steps: int) -> int:
        return max(0, env_steps - cfg.learning_starts)

    for kind in make:
        dataset_id = ids[kind]
        start = time.time()
        card = {**base_card, "dataset_id": dataset_id, "kind": kind,
                "d4rl_equivalent": f"{env_name}-{_D4RL_KIND.get(kind, kind)}"}
        if kind in ROLLOUT_KINDS:
            if kind == "random":
                params, info = (run.init_actor if run else initial_actor(cfg)), None
                sac_steps, sac_wall = 0, 0.0
                policy_desc = "the randomly initialised SAC actor (sampled actions)"
                if run is None:
                    obs_dim, act_dim = env_dims(cfg.env_id)
                    _save_policy(workdir, "random", params, cfg, obs_dim, act_dim,
                                 {"env_steps": 0, "eval": None})
            else:
                info = run.medium if kind == "medium" else run.expert
                params = run.medium_actor if kind == "medium" else run.expert_actor
                sac_steps = int(info["env_steps"])
                sac_wall = float(info["wall_seconds"])
                policy_desc = (f"the SAC actor after {sac_steps} env steps "
                               f"({updates_at(sac_steps)} updates), sampled actions")
            t0 = time.time()
            rows = collect_rollouts(
                agent, params, cfg.env_id, cfg.dataset_size,
                env_seed=stream_seed(cfg.seed, _ROLLOUT_STREAM[kind]),
                key=_stream_key(cfg.seed, _ROLLOUT_STREAM[kind]),
                desc=f"{kind} rollouts", progress=progress)
            collection = time.time() - t0
            episodes, cut = split_episodes(rows, stream_seed(cfg.seed, _ROLLOUT_STREAM[kind]))
            if kind == "random":
                eval_result = _evaluate(_actor(agent), params, cfg) if refs else None
                behaviour_eval = None if eval_result is None else _eval_summary(eval_result, 0)
            else:
                behaviour_eval = info["eval"]
            card["behaviour_policy"] = {
                "description": policy_desc,
                "eval_normalized_score": behaviour_eval and behaviour_eval["normalized_score"],
                "eval_return_mean": behaviour_eval and behaviour_eval["return_mean"],
                "eval": "deterministic tanh(mean) actions, "
                        f"{cfg.eval_episodes} episodes (evaluation.evaluate)",
                "sac_env_steps": sac_steps, "sac_updates": updates_at(sac_steps),
            }
            if kind == "medium":
                card["behaviour_policy"]["medium_band"] = info["band"]
                card["behaviour_policy"]["in_band"] = info["in_band"]
            if kind == "expert":
                card["behaviour_policy"]["selection"] = info["policy"]
                card["behaviour_policy"]["sac_trained_env_steps"] = info["trained_env_steps"]
            card["wall_seconds"] = {"sac": sac_wall, "collection": collection}
            card["scale"] = cfg.dataset_size / D4RL_DATASET_SIZE
        elif kind == "mixed":
            info = run.medium
            rows = run.mixed_rows()
            episodes, cut = split_episodes(rows, stream_seed(cfg.seed, _SAC_ENV))
            card["behaviour_policy"] = {
                "description": (f"every SAC policy iterate up to the medium policy: the "
                                f"replay buffer of the first {info['env_steps']} env steps "
                                f"(the first {cfg.learning_starts} by the initial actor)"),
                "eval_normalized_score": info["eval"]["normalized_score"],
                "eval_return_mean": info["eval"]["return_mean"],
                "eval": f"medium policy, deterministic, {cfg.eval_episodes} episodes",
                "sac_env_steps": int(info["env_steps"]),
                "sac_updates": updates_at(int(info["env_steps"])),
                "medium_band": info["band"], "in_band": info["in_band"],
            }
            card["wall_seconds"] = {"sac": float(info["wall_seconds"]), "collection": 0.0}
        else:  # medium-expert
            t0 = time.time()
            medium_eps = read_episode_buffers(ids["medium"])
            expert_eps = read_episode_buffers(ids["expert"], start_id=len(medium_eps))
            episodes, cut = medium_eps + expert_eps, False
            parts = {part: read_card(ids[part]) for part in ("medium", "expert")}
            card["behaviour_policy"] = {
                "description": f"medium ({ids['medium']}) then expert ({ids['expert']}) episodes",
                "eval_normalized_score": {p: c["behaviour_policy"]["eval_normalized_score"]
                                          for p, c in parts.items()},
                "sac_env_steps": {p: c["behaviour_policy"]["sac_env_steps"]
                                  for p, c in parts.items()},
            }
            card["parts"] = {p: {"dataset_id": ids[p], "size": c["size"], "created": c.get("created")}
                             for p, c in parts.items()}
            card["wall_seconds"] = {
                "sac": max(c["wall_seconds"]["sac"] for c in parts.values()),
                "collection": sum(c["wall_seconds"]["collection"] for c in parts.values())
                + time.time() - t0}
        stats = _episode_stats(episodes, cut, cfg.env_id, refs)
        size = int(sum(len(e.rewards) for e in episodes))
        t0 = time.time()
        normalized = stats["normalized_return_mean"]
        description = (
            f"D4RL-style '{kind}' data ({card['d4rl_equivalent']}) in {cfg.env_id}: {size} "
            f"transitions, {stats['episodes']} episodes, behaviour: "
            f"{card['behaviour_policy']['description']}; "
            + ("" if normalized is None else f"mean normalised return {normalized:.1f}; ")
            + f"seed {cfg.seed}. Made by mb2po_jax.data.generation.")
        path = write_minari_dataset(
            dataset_id, episodes, cfg.env_id,
            algorithm_name=f"SAC (mb2po_jax.agents.sac), {kind} data", description=description,
            ref_min_score=None if refs is None else refs[0],
            ref_max_score=None if refs is None else refs[1], overwrite=True)
        card["wall_seconds"]["write"] = time.time() - t0
        card["wall_seconds"]["total_this_kind"] = (
            card["wall_seconds"]["sac"] + card["wall_seconds"]["collection"]
            + card["wall_seconds"]["write"])
        card.update(size=size, **stats, created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    seconds_this_session=time.time() - start)
        if run is not None:
            card["sac_run"] = {"env_steps": run.env_steps, "wall_seconds": run.wall_seconds,
                               "speed": run.speed, "episodes": run.episodes,
                               "evals": run.evals}
        # Written last: its presence marks a complete dataset.
        (path / CARD_FILE).write_text(json.dumps(card, indent=2))
        logger.info("Wrote %s: %d transitions, %d episodes, return %s (normalised %s) in %s",
                    dataset_id, size, stats["episodes"], _fmt(stats["return_mean"]),
                    _fmt(normalized), path)
        results[kind] = MadeKind(kind, dataset_id, path, card, False)
    return {k: results[k] for k in KINDS if k in results}


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.1f}"
