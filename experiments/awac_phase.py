"""The AWAC pretraining phase: chunked, checkpointed, resumable training.

Steps run in chunks of ``config.train.steps_per_chunk`` updates, each chunk one
jitted ``lax.scan`` (:func:`mb2po_jax.awac.make_train_steps`); metrics cross to
the host once per chunk. The key of chunk ``c`` is ``fold_in(train_key, c)``,
a function of the seed and the chunk index only, so a run resumed from a
checkpoint at chunk ``c`` computes exactly the numbers the uninterrupted run
would have.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import jax
import ml_collections
import numpy as np

from mb2po_jax import awac
from mb2po_jax.checkpoint import Checkpointer
from mb2po_jax.data import Transitions, to_device
from mb2po_jax.evaluation import evaluate
from mb2po_jax.metrics_logger import MetricsLogger

from experiments.common import PreparedData

logger = logging.getLogger(__name__)

PHASE = "awac"
# Stream ids folded into the run's seed key, one per use of randomness.
_INIT_STREAM, _TRAIN_STREAM = 0, 1


class TrainingDivergedError(RuntimeError):
    """Training produced non-finite statistics; the last good checkpoint is kept."""


@dataclasses.dataclass
class PhaseOutcome:
    agent: awac.AWAC
    state: awac.AWACState
    steps: int
    wall_seconds: float  # cumulative over every session of this run
    final_eval: dict[str, Any]  # evaluation of the policy at the last step


def build_agent(config: ml_collections.ConfigDict, obs_dim: int, act_dim: int) -> awac.AWAC:
    return awac.make_awac(obs_dim, act_dim, awac.AWACConfig.from_dict(config.awac))


def abstract_state(agent: awac.AWAC) -> Any:
    """The train state's structure, for restoring checkpoints into."""
    return jax.eval_shape(agent.init, jax.random.PRNGKey(0))


def evaluate_policy(
    agent: awac.AWAC, policy_params: Any, env_id: str, eval_config, ref_scores
) -> dict[str, Any]:
    act = jax.jit(agent.act)
    return evaluate(
        lambda obs: np.asarray(act(policy_params, obs)),
        env_id,
        eval_config.num_episodes,
        seed=eval_config.seed,
        num_envs=eval_config.num_envs,
        ref_scores=ref_scores,
        max_episode_steps=eval_config.max_episode_steps,
    )


def eval_scalars(result: dict[str, Any]) -> dict[str, Any]:
    keys = ("return_mean", "return_std", "normalized_score", "normalized_score_std",
            "episode_length_mean")
    return {key: result[key] for key in keys}


def _check_finite(metrics: dict[str, float], step: int) -> None:
    bad = [name for name, value in metrics.items() if not np.isfinite(value)]
    if bad:
        raise TrainingDivergedError(
            f"Phase '{PHASE}' diverged in the chunk ending at step {step}: non-finite "
            f"{', '.join(f'{name}={metrics[name]}' for name in bad)}. The last good "
            f"checkpoint is kept; lower the learning rates or check the dataset's rewards."
        )


def run_awac_phase(
    config: ml_collections.ConfigDict,
    workdir: Path,
    data: PreparedData,
    *,
    meta: dict[str, Any],
    session_start: float,
) -> PhaseOutcome:
    """Trains AWAC to ``config.awac.num_steps`` steps, resuming if possible.

    Metrics go to ``workdir/awac/metrics_{train,eval}.csv`` and
    ``workdir/awac/tb`` (TensorBoard), one row per chunk / evaluation.

    Args:
        meta: JSON metadata stored with every checkpoint (config, dataset).
        session_start: ``time.time()`` when this process started the run.
    """
    train_cfg = config.train
    agent = build_agent(config, data.info.obs_dim, data.info.act_dim)
    seed_key = jax.random.PRNGKey(config.seed)
    num_steps, chunk = config.awac.num_steps, train_cfg.steps_per_chunk
    with Checkpointer(workdir / "checkpoints" / PHASE, train_cfg.keep_checkpoints) as checkpointer:
        wall_before, last_eval = 0.0, None
        if checkpointer.latest_step() is not None:
            state, saved_meta = checkpointer.restore(abstract_state(agent))
            wall_before = float(saved_meta.get("wall_seconds", 0.0))
            last_eval = saved_meta.get("last_eval")
            logger.info("Resuming %s from step %d (%s).", PHASE, int(state.step),
                        checkpointer.directory)
        else:
            state = agent.init(jax.random.fold_in(seed_key, _INIT_STREAM))
        step = int(state.step)
        if step >= num_steps:
            # Already finished: report the time the training took, not this no-op.
            return PhaseOutcome(agent, state, step, wall_before, last_eval)

        def wall() -> float:
            return wall_before + time.time() - session_start

        def save(step: int) -> float:
            seconds = wall()
            checkpointer.save(step, state, {**meta, "phase": PHASE, "step": step,
                                            "wall_seconds": seconds, "last_eval": last_eval})
            return seconds

        train_steps = awac.make_train_steps(agent.update, config.awac.batch_size, chunk)
        dataset: Transitions = to_device(data.transitions)
        train_key = jax.random.fold_in(seed_key, _TRAIN_STREAM)
        # Rows logged after the checkpoint we resume from are dropped (they will
        # be logged again), so curves never hold a step twice.
        with MetricsLogger(workdir / PHASE, resume_step=step,
                           use_tensorboard=train_cfg.tensorboard) as metrics, \
                _progress(train_cfg.progress_bar, num_steps, step) as bar:
            try:
                while step < num_steps:
                    state, chunk_metrics = train_steps(
                        state, dataset, jax.random.fold_in(train_key, step // chunk)
                    )
                    step += chunk
                    chunk_metrics = {k: float(v) for k, v in jax.device_get(chunk_metrics).items()}
                    _check_finite(chunk_metrics, step)
                    metrics.write(step, chunk_metrics, "train")
                    bar.update(chunk)
                    bar.set_postfix(critic=f"{chunk_metrics['critic_loss']:.3g}",
                                    q=f"{chunk_metrics['q_data_mean']:.3g}")
                    if step % train_cfg.eval_every == 0 or step == num_steps:
                        last_eval = evaluate_policy(agent, state.policy_params, data.env_id,
                                                    config.eval, data.ref_scores)
                        metrics.write(step, eval_scalars(last_eval), "eval")
                        bar.write(_eval_line(step, last_eval))
                    if step % train_cfg.checkpoint_every == 0 or step == num_steps:
                        # The final save's time is the phase's: a re-run of the
                        # finished run reads back the same number.
                        wall_seconds = save(step)
                    metrics.flush()
            except KeyboardInterrupt:
                # Keep the work of the chunks finished since the last checkpoint.
                save(step)
                raise InterruptedRun(PHASE, step) from None
        return PhaseOutcome(agent, state, step, wall_seconds, last_eval)


class InterruptedRun(Exception):
    """Ctrl-C during training; a checkpoint at ``step`` was saved first."""

    def __init__(self, phase: str, step: int) -> None:
        super().__init__(
            f"Interrupted during phase '{phase}'; saved a checkpoint at step {step}. "
            f"Run the same command again to resume from there."
        )


def _eval_line(step: int, result: dict[str, Any]) -> str:
    score = result["normalized_score"]
    return (f"eval @ {step}: return {result['return_mean']:.1f} ± {result['return_std']:.1f}"
            + ("" if score is None else f", normalized score {score:.1f}"))


def _progress(enabled: bool, total: int, initial: int):
    """A tqdm bar (``disable=True`` makes every call a no-op, logging eval lines
    through ``tqdm.write`` still)."""
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=PHASE, unit="step", dynamic_ncols=True,
                disable=not enabled)
