"""The simulator as the rollout's model (a diagnostic): inside the jitted,
blocked, seed-vmapped step, MuJoCo must give what the env itself gives."""

from __future__ import annotations

import chex
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mb2po_jax.model import rollout, simulator_check, simulator_model


def _linear_policy(params, obs, keys):
    """A deterministic policy (keys unused), so the env's own episode is the reference."""
    del keys
    return jnp.tanh(obs @ params)


def _episode(env_id: str, weights: np.ndarray, steps: int, seed: int = 5):
    """(observations, next observations, rewards, terminated) of the env's own
    episode under the linear policy, from the first row on."""
    env = gym.make(env_id)
    obs, _ = env.reset(seed=seed)
    rows = []
    for _ in range(steps):
        action = np.tanh(obs.astype(np.float32) @ weights)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        rows.append((obs, next_obs, reward, terminated))
        if terminated or truncated:
            break
        obs = next_obs
    env.close()
    return [np.asarray(column) for column in zip(*rows)]


@pytest.mark.parametrize("env_id", ["Hopper-v5", "Walker2d-v5"])
def test_simulator_step_repeats_the_envs_own_episode(env_id: str) -> None:
    env = gym.make(env_id)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    env.close()
    weights = np.random.default_rng(0).normal(0.0, 0.1, (obs_dim, act_dim)).astype(np.float32)
    episode = _episode(env_id, weights, 60)
    probe = simulator_check.make_probe(env_id, obs_dim)
    # Rows with a velocity at the clip bound cannot be restored (the start
    # pool leaves them out too).
    keep = probe.restorable(episode[0])
    obs, next_obs, rewards, terminated = (column[keep] for column in episode)
    assert len(obs) >= 8
    # Blocks of 7 rows (padding the last) and two seeds vmapped: one host call
    # per seed and block.
    step = simulator_model.make_simulator_step(probe, _linear_policy, block_size=7)
    params = jnp.stack([jnp.asarray(weights), jnp.zeros_like(weights)])
    out = jax.jit(jax.vmap(step, in_axes=(None, 0, None, None)))(
        None, params, jnp.asarray(obs, jnp.float32), jax.random.PRNGKey(0))
    probe.close()
    chex.assert_shape(out.next_observations, (2, len(obs), obs_dim))
    np.testing.assert_allclose(out.next_observations[0], next_obs, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out.model_rewards[0], rewards, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(out.dones[0], terminated.astype(np.float32))
    # No penalty in the real MDP.
    np.testing.assert_array_equal(out.penalized_rewards, out.model_rewards)
    assert float(jnp.max(jnp.abs(out.uncertainty))) == 0.0
    # The second seed's zero policy acts 0: another outcome from the same states.
    np.testing.assert_array_equal(out.actions[1], 0.0)
    assert not np.allclose(out.next_observations[1], next_obs, atol=1e-3)


def test_simulator_step_acts_with_the_learned_models_keys() -> None:
    """Row i samples its action with the same key in both steps, so a
    simulator run and an ensemble run differ only in the model's answer."""
    probe = simulator_check.make_probe("Hopper-v5", 11)
    noisy = lambda params, obs, keys: jax.vmap(  # noqa: E731
        lambda k: jax.random.uniform(k, (3,), minval=-1, maxval=1))(keys)
    sim = simulator_model.make_simulator_step(probe, noisy, block_size=4)
    obs = jnp.asarray(_episode("Hopper-v5", np.zeros((11, 3), np.float32), 10)[0], jnp.float32)
    key = jax.random.PRNGKey(3)
    sim_actions = jax.jit(sim)(None, None, obs, key).actions
    probe.close()

    def block(dyn_state, params, rows, row_keys):  # the learned step's action draw
        keys = jax.vmap(lambda k: jax.random.split(k, 3))(row_keys)
        actions = noisy(params, rows, keys[:, 0])
        zeros = jnp.zeros(rows.shape[0])
        return rollout.StepOutput(actions, rows, zeros, zeros, zeros, zeros, zeros)

    reference = rollout.map_blocks(block, 64)(None, None, obs, key).actions
    np.testing.assert_array_equal(sim_actions, reference)


def test_no_restorable_row_is_refused_naming_the_field() -> None:
    probe = simulator_check.make_probe("Walker2d-v5", 17)
    with pytest.raises(ValueError, match=r"mb2po\.start_states: no dataset row.*clip bound 10"):
        simulator_model.restorable_start_pool(probe, np.full((3, 17), 10.0),
                                              field="mb2po.start_states")
    probe.close()
