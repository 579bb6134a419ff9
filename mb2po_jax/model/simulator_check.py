"""The model's one-step error where the policy acts, measured in the simulator.

The conservative MDP is only as good as the model where the fine-tuned policy
takes it. The held-out error (:mod:`mb2po_jax.model.dynamics`) is measured at
the dataset's actions; once the policy moves away from them, the model can be
wrong in a direction the penalty does not see, and the policy learns to
exploit that error (a fine-tuning run that collapses in the real environment
while its Q-values look healthy). This module puts a fixed set of dataset
states back into the real MuJoCo simulator, steps it with the policy's actions
and with the dataset's, and compares what happened with what the model
predicted:

    reward bias   mean(model reward - true reward)  (> 0: the model flatters)
    state MSE     mean over rows and dimensions of (model s' - true s')^2
    penalty       lambda * u(s, a), the conservative MDP's penalty there
    termination   how often the true next state ends the episode

Works for gymnasium MuJoCo locomotion envs whose observation is
``qpos[1:]`` then ``qvel`` (Hopper, Walker2d, HalfCheetah v5: the x position
is left out and changes neither the dynamics nor the reward). Hopper and
Walker2d clip the velocities in the observation to [-10, 10]; a row with a
clipped velocity has lost part of its state, so it cannot be restored (nor
predicted from the observation by any model) and is left out of the check
(:meth:`SimulatorProbe.restorable`). That is not rare: a third of the rows of
the project's walker2d-mixed dataset have a clipped foot velocity (the
held-out error of a walker2d model is dominated by them), against a
thousandth of hopper-mixed's.
Host-side (MuJoCo), a few hundred steps per call: meant for the periodic
evaluations, not the training loop.
"""

from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from mb2po_jax.model.dynamics import Dynamics, DynamicsState
from mb2po_jax.model.penalties import get_penalty


def observation_layout(env: gym.Env, obs_dim: int) -> tuple[int, int] | None:
    """``(nq, nv)`` when observations of ``env`` are ``qpos[1:]`` then ``qvel``;
    None for any other env (then no check is possible)."""
    raw = env.unwrapped
    model = getattr(raw, "model", None)
    if model is None or not getattr(raw, "_exclude_current_positions_from_observation", False):
        return None
    nq, nv = int(model.nq), int(model.nv)
    return (nq, nv) if obs_dim == nq - 1 + nv else None


class SimulatorProbe:
    """One real env that can be put into any dataset state and stepped once.

    Args:
        env_id: a gymnasium id (e.g. ``"Walker2d-v5"``).
        obs_dim: the dataset's observation size.

    Raises:
        ValueError: the env's observations are not ``qpos[1:]`` + ``qvel`` (see
            :func:`observation_layout`); :func:`make_probe` returns None instead.
    """

    def __init__(self, env_id: str, obs_dim: int):
        self.env = gym.make(env_id)
        self.env.reset(seed=0)
        layout = observation_layout(self.env, obs_dim)
        if layout is None:
            self.env.close()
            raise ValueError(f"{env_id}: observations are not qpos[1:] + qvel of obs_dim "
                             f"{obs_dim}; the simulator check cannot restore its states.")
        self.nq, self.nv = layout
        self.velocity_clip = self._velocity_clip()

    def _velocity_clip(self) -> float | None:
        """The bound the env clips observed velocities to, or None: read from
        the env itself (a state with a large velocity, observed)."""
        raw = self.env.unwrapped
        qpos = np.array(raw.init_qpos, np.float64)
        large = np.full(self.nv, 1e3)
        raw.set_state(qpos, large)
        observed = np.abs(raw._get_obs()[self.nq - 1:])
        return float(observed.max()) if observed.max() < 1e3 else None

    def restorable(self, observations: np.ndarray) -> np.ndarray:
        """[n] bool: rows whose observation holds the whole state (no velocity
        at the env's clip bound)."""
        if self.velocity_clip is None:
            return np.ones(len(observations), bool)
        velocities = np.abs(np.asarray(observations)[:, self.nq - 1:])
        return np.all(velocities < self.velocity_clip * (1 - 1e-6), axis=1)

    def restore(self, env: gym.Env, observation: np.ndarray) -> None:
        """Puts ``env`` (this env id, unwrapped) into the state ``observation``
        [obs_dim] holds: x position 0 (the observation omits it; these robots'
        dynamics do not depend on it), ``qpos[1:]`` and ``qvel`` as observed."""
        obs = np.asarray(observation, np.float64)
        env.set_state(np.concatenate([[0.0], obs[: self.nq - 1]]), obs[self.nq - 1:])

    def step(self, observations: np.ndarray, actions: np.ndarray) -> dict[str, np.ndarray]:
        """True one-step outcomes from each (s, a).

        Args:
            observations: [n, obs_dim]; actions: [n, act_dim] in [-1, 1] (the
                env's action bounds are [-1, 1] for these robots).

        Returns:
            ``next_observations`` [n, obs_dim], ``rewards`` [n], ``terminated`` [n].
        """
        raw = self.env.unwrapped
        next_obs, rewards, terminated = [], [], []
        for obs, action in zip(np.asarray(observations, np.float64),
                               np.asarray(actions, np.float64)):
            self.restore(raw, obs)
            o, r, term, _, _ = raw.step(action)
            next_obs.append(o)
            rewards.append(r)
            terminated.append(term)
        return {"next_observations": np.asarray(next_obs, np.float32),
                "rewards": np.asarray(rewards, np.float32),
                "terminated": np.asarray(terminated, bool)}

    def close(self) -> None:
        self.env.close()


def make_probe(env_id: str, obs_dim: int) -> SimulatorProbe | None:
    """A probe, or None where the env's states cannot be restored from observations."""
    try:
        return SimulatorProbe(env_id, obs_dim)
    except (ValueError, gym.error.Error):  # another layout; not a registered env
        return None


def make_model_prediction(dynamics: Dynamics, *, penalty_coef: float,
                          uncertainty_rule: str = "max_std_norm") -> Callable[..., dict[str, jax.Array]]:
    """``predict(dyn_state, obs [n, o], actions [n, a])`` -> the elites' mean
    prediction ``next_observations`` [n, o], ``rewards`` [n] and the penalty
    ``penalty`` [n] = lambda * u(s, a) of the conservative MDP (jitted)."""
    penalty = get_penalty(uncertainty_rule)

    @jax.jit
    def predict(dyn_state: DynamicsState, observations: jax.Array, actions: jax.Array):
        mean, logvar = dynamics.predict(dyn_state, observations, actions)
        mean, logvar = mean[dyn_state.elites], logvar[dyn_state.elites]  # [E, n, D]
        average = jnp.mean(mean, axis=0)
        return {"next_observations": observations + average[:, :-1],
                "rewards": average[:, -1],
                "penalty": penalty_coef * penalty(mean, logvar)}

    return predict


def compare(predicted: dict[str, Any], true: dict[str, np.ndarray], suffix: str) -> dict[str, float]:
    """The check's scalars for one set of actions (``suffix``: ``policy`` or ``data``)."""
    model_r = np.asarray(predicted["rewards"], np.float64)
    true_r = np.asarray(true["rewards"], np.float64)
    state_err = np.asarray(predicted["next_observations"], np.float64) - true["next_observations"]
    return {
        f"sim_reward_bias_{suffix}": float(np.mean(model_r - true_r)),
        f"sim_reward_abs_error_{suffix}": float(np.mean(np.abs(model_r - true_r))),
        f"sim_true_reward_{suffix}": float(np.mean(true_r)),
        f"sim_state_mse_{suffix}": float(np.mean(np.square(state_err))),
        f"sim_penalty_{suffix}": float(np.mean(np.asarray(predicted["penalty"]))),
        f"sim_termination_{suffix}": float(np.mean(true["terminated"])),
    }


def check(probe: SimulatorProbe, predict: Callable[..., dict[str, jax.Array]],
          dyn_state: DynamicsState, observations: np.ndarray, data_actions: np.ndarray,
          policy_actions: np.ndarray) -> dict[str, float]:
    """Model vs simulator at the same dataset states, once with the policy's
    actions and once with the dataset's (the baseline the held-out error
    describes). Scalars named ``sim_*_policy`` and ``sim_*_data``."""
    result = {}
    for suffix, actions in (("policy", policy_actions), ("data", data_actions)):
        predicted = jax.device_get(predict(dyn_state, observations, actions))
        result.update(compare(predicted, probe.step(observations, actions), suffix))
    return result
