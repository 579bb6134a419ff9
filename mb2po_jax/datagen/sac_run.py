"""The online SAC run behind the datasets: training, checkpoints, exact resume.

Loop. Env steps run in Python (:func:`mb2po_jax.datagen.rollouts.run_policy`),
one jitted sampled action per step; every ``update_every`` steps the new
transitions go into a device-resident replay buffer (fixed capacity
``max_env_steps``, updated in place through buffer donation) and
``update_every`` SAC updates run as one jitted ``lax.scan`` (updates per env
step = 1, after ``learning_starts`` env steps of the initial actor). The actor
is evaluated deterministically (``evaluation.evaluate``, ``eval_episodes``
episodes, fixed seeds) every ``eval_every`` env steps. The first evaluation at
or above ``medium_target - medium_tolerance`` snapshots the medium actor; at
``max_env_steps`` (or ``expert_target``) the expert is chosen (the best
evaluated actor, or the final one).

This is its own loop, not :func:`mb2po_jax.runner.run_phase`: the SAC run's
evaluations change its state (they take the medium/expert snapshots and end
the run), its checkpoints carry per-chunk metadata (the env's MuJoCo state,
the episode log) in the existing layout ``<workdir>/checkpoints/<env step>``,
and an env mutated step by step in Python needs the commit points below.

Checkpoints and resume. The run lives in a work directory: Orbax checkpoints
(:class:`mb2po_jax.checkpoint.Checkpointer`) of
:class:`mb2po_jax.datagen.run_state.GenerationState` (the SAC state, the
replay buffer, the medium/best actor snapshots), with JSON
metadata (env step counter, episode bookkeeping, evaluations, wall time, the
env's state), every ``checkpoint_every`` env steps, when a snapshot is taken,
at the end, and on Ctrl-C. For MuJoCo envs the env state is saved exactly
(:mod:`mb2po_jax.datagen.env_state`), so a resumed run continues the
interrupted episode and produces exactly the data an uninterrupted run would.
Envs without MuJoCo state are instead reset at the resumed step (seeded from
``seed`` and the step), and the interrupted episode's last stored transition
is marked as a truncation. Behaviour policies are also saved on their own
(:func:`mb2po_jax.datagen.behaviour.save_policy`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from mb2po_jax.agents import sac as sac_lib
from mb2po_jax.checkpoint import Checkpointer, describe_differences
from mb2po_jax.runner import TrainingDivergedError, check_finite
from mb2po_jax.datagen import behaviour, rollouts
from mb2po_jax.datagen.config import (
    ACT_STREAM,
    RESUME_ENV_STREAM,
    SAC_ENV_STREAM,
    TRAIN_STREAM,
    GenerationConfig,
    GenerationError,
    InterruptedGeneration,
    stream_key,
    stream_seed,
    validate_config,
)
from mb2po_jax.datagen.env_state import has_mujoco_state, restore_env_state, save_env_state
from mb2po_jax.datagen.run_state import (
    GenerationState,
    empty_buffer,
    initial_generation_state,
    insert_rows,
)
from mb2po_jax.transitions import Transitions

logger = logging.getLogger(__name__)

# How far a SAC run goes, in order: to the medium policy, or on to the expert.
SAC_STAGES = ("medium", "expert")


# ------------------------------------------------------------------ the run


@dataclasses.dataclass
class BehaviourRun:
    """What a (possibly resumed, possibly finished earlier) SAC run yields."""

    agent: sac_lib.SAC
    config: GenerationConfig
    workdir: Path
    init_actor: Any
    env_steps: int
    wall_seconds: float  # SAC time, cumulative over resumes
    medium: dict[str, Any] | None  # {'env_steps', 'eval', 'wall_seconds', 'in_band', 'band'}
    medium_actor: Any
    expert: dict[str, Any] | None  # {'env_steps', 'eval', 'wall_seconds', 'policy', ...}
    expert_actor: Any
    buffer: Transitions  # device buffer (capacity rows)
    evals: list[dict[str, Any]]
    speed: dict[str, float]
    episodes: dict[str, int]

    def mixed_rows(self) -> dict[str, np.ndarray]:
        """The replay buffer up to the medium policy, as host arrays
        (``[n, ...]`` per field, n = the medium policy's env step)."""
        if self.medium is None:
            raise GenerationError("The SAC run has not reached the medium policy yet.")
        n = int(self.medium["env_steps"])
        return {field: np.asarray(getattr(self.buffer, field)[:n])
                for field in rollouts.ROW_FIELDS}


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
    if until not in SAC_STAGES:
        raise ValueError(f"until must be 'medium' or 'expert', got {until!r}")
    validate_config(cfg, [until])
    run = _SACRun(cfg, Path(workdir).expanduser().absolute())
    try:
        return run.train(until, progress)
    finally:
        run.close()


class _Timer:
    def __init__(self) -> None:
        self.seconds = 0.0

    def __enter__(self):
        self._start = time.perf_counter()

    def __exit__(self, *exc):
        self.seconds += time.perf_counter() - self._start


def _check_same_run(saved: dict[str, Any], current: dict[str, Any], workdir: Path) -> None:
    lines = describe_differences(json.loads(json.dumps(saved)), json.loads(json.dumps(current)))
    if lines:
        raise GenerationError(
            f"Workdir {workdir} holds a SAC run with different settings:\n{lines}"
            f"Resume it with the same options, or pass --workdir=<new directory> (or "
            f"another --seed) to start a separate SAC run."
        )


class _SACRun:
    """The mutable side of one SAC run: env, arrays, bookkeeping, checkpoints.

    A chunk (``update_every`` env steps, then as many updates) is the unit of
    progress: its results are *committed* together at its end, and a
    checkpoint always holds committed values only, so Ctrl-C at any point
    saves a consistent state.
    """

    def __init__(self, cfg: GenerationConfig, workdir: Path) -> None:
        self.cfg, self.workdir = cfg, workdir
        self.run_start = time.time()
        self.agent, self.obs_dim, self.act_dim = behaviour.build_agent(cfg)
        self.init_sac = behaviour.initial_state(cfg)
        self.init_actor = self.init_sac.actor_params
        self.sample_fn, self.act_fn = behaviour.sampler(self.agent), behaviour.actor(self.agent)
        self.train_steps = behaviour.train_steps(self.obs_dim, self.act_dim, cfg.sac,
                                                 cfg.batch_size, cfg.update_every)
        self.act_key = stream_key(cfg.seed, ACT_STREAM)
        self.train_key = stream_key(cfg.seed, TRAIN_STREAM)
        self.band = (cfg.medium_target - cfg.medium_tolerance,
                     cfg.medium_target + cfg.medium_tolerance)
        self.env = gym.make(cfg.env_id)
        self.checkpointer = Checkpointer(workdir / "checkpoints", cfg.keep_checkpoints)
        self.chunks_this_run = 0
        self.policies_saved: set[str] = set()
        if self.checkpointer.latest_step() is not None:
            self._resume()
        else:
            self._start()
        self.wall_before = float(self.meta["wall_seconds"])
        self.saved_wall = self.wall_before  # SAC time in the newest checkpoint
        self.committed = self._commit_point()

    # ---------------------------------------------------------------- setup

    def _start(self) -> None:
        cfg = self.cfg
        self.sac_state = self.init_sac
        self.buffer = empty_buffer(cfg.max_env_steps, self.obs_dim, self.act_dim)
        self.medium_actor = self.best_actor = self.init_actor
        self.env_steps = 0
        self.obs, _ = self.env.reset(seed=stream_seed(cfg.seed, SAC_ENV_STREAM))
        self.episode_return, self.episode_length = 0.0, 0
        self.meta = {
            "config": cfg.run_identity(), "medium": None, "best": None, "expert": None,
            "evals": [], "episode_log": [], "wall_seconds": 0.0, "last_eval_step": 0,
            "speed": {"env_seconds": 0.0, "update_seconds": 0.0, "eval_seconds": 0.0,
                      "env_steps": 0, "updates": 0},
        }
        behaviour.save_policy(self.workdir, "random", self.init_actor, self.cfg, self.obs_dim,
                              self.act_dim, {"env_steps": 0, "eval": None})

    def _resume(self) -> None:
        cfg = self.cfg
        _check_same_run(self.checkpointer.restore_meta()["config"], cfg.run_identity(),
                        self.workdir)
        state, meta = self.checkpointer.restore(
            jax.eval_shape(lambda: initial_generation_state(cfg)))
        self.sac_state, self.buffer = state.sac, state.buffer
        self.medium_actor, self.best_actor = state.medium_actor, state.best_actor
        self.meta = meta
        self.env_steps = int(meta["env_steps"])
        self.obs, _ = self.env.reset(seed=stream_seed(cfg.seed, SAC_ENV_STREAM))
        if meta["env_state"] is not None and has_mujoco_state(self.env):
            restore_env_state(self.env, meta["env_state"])
            self.obs = np.asarray(meta["obs"], dtype=np.float64)
            self.episode_return = float(meta["episode_return"])
            self.episode_length = int(meta["episode_length"])
        else:
            # No exact env state: a new episode starts here, and the
            # interrupted one ends in a truncation.
            self.obs, _ = self.env.reset(
                seed=stream_seed(cfg.seed, RESUME_ENV_STREAM * 1_000_003 + self.env_steps))
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
            "env_state": save_env_state(self.env),
            "obs": self.obs.tolist(),
            "episode_return": self.episode_return,
            "episode_length": self.episode_length,
            "num_logged": len(self.meta["episode_log"]),
        }

    def wall(self) -> float:
        if self.chunks_this_run == 0:
            return self.wall_before
        return self.wall_before + time.time() - self.run_start

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
            result = behaviour.evaluate_actor(self.act_fn, self.sac_state.actor_params, cfg)
        summary = behaviour.eval_summary(result, step)
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
                behaviour.save_policy(self.workdir, kind, actor, self.cfg, self.obs_dim,
                                      self.act_dim, self.meta[kind])

    # ------------------------------------------------------------------ chunk

    def run_chunk(self, stage: dict[str, np.ndarray]) -> None:
        """``update_every`` env steps (into ``stage``, then the buffer), then as
        many SAC updates once past ``learning_starts``; committed at the end."""
        cfg, U = self.cfg, self.cfg.update_every
        speed = self.meta["speed"]
        timer, new_log = _Timer(), []
        params, sample_fn, key = self.sac_state.actor_params, self.sample_fn, self.act_key

        def act(obs: np.ndarray, t: int) -> np.ndarray:
            return np.asarray(sample_fn(params, obs.astype(np.float32), key, t))

        with timer:
            self.obs = rollouts.run_policy(self.env, self.obs, act, stage, t0=self.env_steps)
            rollouts.exclusive_timeouts(stage)
            # Episode bookkeeping in float64 (the stage keeps the env's rewards).
            for j in range(U):
                self.episode_return += float(stage["rewards"][j])
                self.episode_length += 1
                if stage["terminals"][j] or stage["timeouts"][j]:
                    new_log.append([self.env_steps + j + 1, self.episode_return,
                                    self.episode_length, int(stage["terminals"][j])])
                    self.episode_return, self.episode_length = 0.0, 0
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
        self.chunks_this_run += 1
        self.committed = self._commit_point()

    # ------------------------------------------------------------------- loop

    def train(self, until: str, progress: bool) -> BehaviourRun:
        cfg, U = self.cfg, self.cfg.update_every
        lo = self.band[0]
        # float64 rewards: the episode returns in the log add the env's own
        # values; the buffer stores them as float32 (insert_rows casts).
        stage = rollouts.empty_rows(U, self.obs_dim, self.act_dim, flag_dtype=np.float32)
        self.chunk_metrics: list[dict[str, float]] = []
        from mb2po_jax.metrics_logger import MetricsLogger

        desc = f"SAC {cfg.env_id} -> {until}" + (" (ETA to the budget)" if until == "medium" else "")
        with MetricsLogger(self.workdir / "sac", resume_step=self.env_steps,
                           use_tensorboard=False) as log, \
                rollouts.progress_bar(progress, cfg.max_env_steps, self.env_steps, desc) as bar:
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
        log_rows, meta = self.meta["episode_log"], self.meta
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
    """The runner's finiteness check, as a GenerationError with SAC's remedy."""
    try:
        check_finite("sac", metrics, env_steps,
                     remedy="lower the learning rates (SACConfig) or check the env's rewards")
    except TrainingDivergedError as error:
        raise GenerationError(f"SAC diverged before env step {env_steps}: {error}") from None


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
