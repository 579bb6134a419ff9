"""The real environment's own episodes as fine-tuning data: an online-AWAC control.

Not the paper's method. MB2PO's critic trains on one-step model transitions
from dataset states; if fine-tuning degrades the policy, the cause may be the
learned model, the one-step starts (the critic bootstraps at successors it
never trains on), or the AWAC update itself. The simulator as the model
(:mod:`mb2po_jax.model.simulator_model`) removes the first only. This module
removes both: the (1 - omega) rows of each batch come from whole episodes of
the current policy in the real environment, from its own reset distribution,
as in online AWAC (Nair et al., 2020), the setting where AWAC fine-tuning is
known to work. The rest of the loop (buffer of the last K iterations, omega
dataset rows, the updates) is unchanged.

Each iteration runs ``num_envs`` environments for ``num_samples / num_envs``
steps from fresh resets, resetting an environment as soon as its episode ends
(terminated, or truncated at the env's time limit). Everything is a pure
function of the policy and the iteration's key, so checkpoints resume exactly
and ``buffer_checkpoint="regenerate"`` rebuilds the same rows: the scan
carries each environment's full MuJoCo state (``qpos``, ``qvel``, float64,
as bits) and the host steps it through ``jax.pure_callback``, one row at a
time (about 0.1 ms per step on one CPU core).
"""

from __future__ import annotations

from typing import Any, Callable

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

from mb2po_jax.model.rollout import Rollout
from mb2po_jax.transitions import Transitions

# A new environment's episode is drawn with reset(seed=...) from [0, 2**31).
_SEED_RANGE = 2 ** 31 - 1


class OnlineEnv:
    """One real environment that steps any (qpos, qvel) state: the host side."""

    def __init__(self, env_id: str):
        self.env = gym.make(env_id)
        self.raw = self.env.unwrapped
        self.env.reset(seed=0)
        self.nq, self.nv = self.raw.model.nq, self.raw.model.nv
        self.obs_dim = self.env.observation_space.shape[0]
        self.max_episode_steps = self.env.spec.max_episode_steps or 1000

    @property
    def state_words(self) -> int:
        """uint32 words per carried state: (nq + nv) float64s."""
        return 2 * (self.nq + self.nv)

    def _pack(self) -> np.ndarray:
        state = np.concatenate([self.raw.data.qpos, self.raw.data.qvel]).astype(np.float64)
        return state.view(np.uint32)

    def reset(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """A fresh episode's (state bits, observation)."""
        obs, _ = self.env.reset(seed=int(seed))
        return self._pack(), np.asarray(obs, np.float32)

    def step(self, states: np.ndarray, actions: np.ndarray, steps: np.ndarray,
             seeds: np.ndarray):
        """One step of each row's environment; an ended episode restarts.

        Args:
            states: [n, state_words] uint32; actions: [n, act_dim];
            steps: [n] int32 steps already taken in each episode; seeds: [n]
            reset seeds, used only by rows whose episode ends here.

        Returns:
            ``next_obs`` (the step's own, the final observation of an ended
            episode), ``rewards``, ``terminated``, ``truncated``, and the
            carry: ``states``, ``observations`` (a new episode's first where
            one ended) and ``steps``.
        """
        n = len(states)
        out = dict(next_obs=np.zeros((n, self.obs_dim), np.float32),
                   rewards=np.zeros(n, np.float32), terminated=np.zeros(n, np.float32),
                   truncated=np.zeros(n, np.float32),
                   states=np.zeros_like(states), observations=np.zeros((n, self.obs_dim), np.float32),
                   steps=np.zeros(n, np.int32))
        for i in range(n):
            state = np.ascontiguousarray(states[i]).view(np.float64)
            self.raw.set_state(state[: self.nq], state[self.nq:])
            obs, reward, terminated, _, _ = self.raw.step(np.asarray(actions[i], np.float64))
            truncated = not terminated and steps[i] + 1 >= self.max_episode_steps
            out["next_obs"][i], out["rewards"][i] = obs, reward
            out["terminated"][i], out["truncated"][i] = terminated, truncated
            if terminated or truncated:
                out["states"][i], out["observations"][i] = self.reset(seeds[i])
            else:
                out["states"][i], out["observations"][i] = self._pack(), obs
                out["steps"][i] = steps[i] + 1
        return out


def make_online_rollout(
    env_id: str,
    sample_action: Callable[[Any, jax.Array, jax.Array], jax.Array],
    *,
    num_samples: int,
    num_envs: int | None = None,
) -> Callable[[Any, Any, jax.Array, jax.Array], Rollout]:
    """``rollout(dyn_state, policy_params, start_pool, key) -> Rollout`` with
    the signature of :func:`mb2po_jax.model.rollout.make_rollout`'s (the
    dynamics and the start pool are not used): ``num_samples`` real
    transitions of the policy's sampled actions.

    ``num_envs`` (default: one per time limit's worth of samples, so that an
    iteration holds about that many whole episodes) must divide
    ``num_samples``. Episodes cut by the iteration's end are marked as
    timeouts (they bootstrap), as are the env's time-limit truncations.
    """
    host = OnlineEnv(env_id)
    if num_envs is None:
        num_envs = max(1, num_samples // host.max_episode_steps)
    if num_samples < num_envs or num_samples % num_envs:
        raise ValueError(f"mb2po.rollout_samples={num_samples} must be a positive multiple of "
                         f"the online control's {num_envs} environments.")
    num_steps = num_samples // num_envs
    obs_dim, words = host.obs_dim, host.state_words

    def host_reset(seeds):
        states, obs = zip(*(host.reset(s) for s in np.asarray(seeds)))
        return np.stack(states), np.stack(obs)

    def host_step(states, actions, steps, seeds):
        out = host.step(np.asarray(states), np.asarray(actions), np.asarray(steps),
                        np.asarray(seeds))
        return tuple(out[k] for k in ("next_obs", "rewards", "terminated", "truncated",
                                      "states", "observations", "steps"))

    f32 = lambda *shape: jax.ShapeDtypeStruct(shape, jnp.float32)  # noqa: E731
    step_shapes = (f32(num_envs, obs_dim), f32(num_envs), f32(num_envs), f32(num_envs),
                   jax.ShapeDtypeStruct((num_envs, words), jnp.uint32), f32(num_envs, obs_dim),
                   jax.ShapeDtypeStruct((num_envs,), jnp.int32))

    def draw_seeds(key):
        return jax.random.randint(key, (num_envs,), 0, _SEED_RANGE, jnp.int32)

    def rollout(dyn_state, policy_params, start_pool, key):
        del dyn_state, start_pool
        reset_key, steps_key = jax.random.split(key)
        states, obs = jax.pure_callback(
            host_reset,
            (jax.ShapeDtypeStruct((num_envs, words), jnp.uint32), f32(num_envs, obs_dim)),
            draw_seeds(reset_key), vmap_method="sequential")

        def body(carry, step_key):
            states, obs, steps = carry
            action_key, seed_key = jax.random.split(step_key)
            actions = sample_action(policy_params, obs, jax.random.split(action_key, num_envs))
            next_obs, rewards, terminated, truncated, states, new_obs, steps = jax.pure_callback(
                host_step, step_shapes, states, actions, steps, draw_seeds(seed_key),
                vmap_method="sequential")
            transition = Transitions(observations=obs, actions=actions, rewards=rewards,
                                     next_observations=next_obs, terminals=terminated,
                                     timeouts=truncated)
            return (states, new_obs, steps), transition

        init = (states, obs, jnp.zeros((num_envs,), jnp.int32))
        _, transitions = jax.lax.scan(body, init, jax.random.split(steps_key, num_steps))
        # The iteration's last step cuts every episode it does not terminate:
        # a timeout (terminations and truncations never coincide).
        transitions = transitions.replace(
            timeouts=transitions.timeouts.at[-1].set(1.0 - transitions.terminals[-1]))
        transitions = jax.tree.map(lambda x: x.reshape((num_samples,) + x.shape[2:]), transitions)
        zeros = jnp.zeros(())
        stats = {
            "rollout_uncertainty_mean": zeros,
            "rollout_uncertainty_max": zeros,
            "rollout_penalized_reward_mean": jnp.mean(transitions.rewards),
            "rollout_model_reward_mean": jnp.mean(transitions.rewards),
            "rollout_termination_rate": jnp.mean(transitions.terminals),
            "rollout_disagreement_mean": zeros,
            "rollout_valid_fraction": jnp.ones(()),
        }
        return Rollout(transitions=transitions, valid=jnp.ones((num_samples,), bool), stats=stats)

    return rollout
