"""The online control's rollout: real episodes of the policy, exact and repeatable."""

from __future__ import annotations

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mb2po_jax.model import online_env

ENV = "Hopper-v5"


def _policy(scale):
    """A fixed stochastic 'policy': actions from the per-row keys, scaled."""
    def sample_action(params, obs, keys):
        del obs
        return params * jax.vmap(lambda k: jax.random.uniform(k, (3,), minval=-1.0, maxval=1.0))(keys)
    return sample_action, jnp.float32(scale)


def test_rollout_is_the_real_env_episode_and_repeats():
    """Every row is what gymnasium gives for the same actions from the same
    reset, episodes restart where they end, and the same key gives the same rows."""
    sample_action, params = _policy(1.0)
    rollout = jax.jit(online_env.make_online_rollout(ENV, sample_action, num_samples=400,
                                                     num_envs=2))
    key = jax.random.PRNGKey(3)
    out = rollout(None, params, None, key)
    again = rollout(None, params, None, key)
    for a, b in zip(jax.tree.leaves(out.transitions), jax.tree.leaves(again.transitions)):
        np.testing.assert_array_equal(a, b)
    t = jax.tree.map(lambda x: np.asarray(x).reshape((200, 2) + x.shape[1:]), out.transitions)
    assert bool(out.valid.all()) and out.transitions.rewards.shape == (400,)
    # Random actions make the hopper fall well within 200 steps: episodes end
    # and restart inside the iteration.
    assert t.terminals.sum() >= 2

    # Replay env 0 in gymnasium: at each episode start the observation is a
    # reset's; the rows follow the env step by step with the same actions.
    env = gym.make(ENV)
    starts = [0] + [i + 1 for i in np.flatnonzero(t.terminals[:, 0] + t.timeouts[:, 0])[:-1]]
    episodes = 0
    for start in starts:
        end = start
        while not (t.terminals[end, 0] or t.timeouts[end, 0]):
            end += 1
        # The reset seed is not known here; find the episode by its first
        # observation, then check every later row against the simulator.
        env.reset(seed=0)
        raw = env.unwrapped
        qpos = np.concatenate([[0.0], t.observations[start, 0, :5].astype(np.float64)])
        raw.set_state(qpos, t.observations[start, 0, 5:].astype(np.float64))
        for i in range(start, end + 1):
            obs, reward, terminated, _, _ = raw.step(t.actions[i, 0].astype(np.float64))
            np.testing.assert_allclose(obs, t.next_observations[i, 0], rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(reward, t.rewards[i, 0], rtol=1e-4, atol=1e-4)
            assert bool(terminated) == bool(t.terminals[i, 0])
            if i < end:
                np.testing.assert_allclose(t.observations[i + 1, 0], t.next_observations[i, 0])
        episodes += 1
    assert episodes >= 2
    # The iteration's last step cuts the unfinished episodes: timeouts, never both.
    assert np.all(t.terminals[-1] + t.timeouts[-1] == 1.0)
    assert np.all(t.terminals * t.timeouts == 0.0)
    # A different key: different resets and actions.
    other = rollout(None, params, None, jax.random.PRNGKey(4))
    assert not np.allclose(other.transitions.observations[:2], out.transitions.observations[:2])
    assert float(out.stats["rollout_termination_rate"]) == pytest.approx(float(t.terminals.mean()))


def test_rollout_starts_from_the_envs_reset_distribution():
    """The first rows of an iteration are reset observations: gymnasium's
    Hopper resets within +-0.005 of its initial pose and velocity."""
    sample_action, params = _policy(0.0)
    rollout = jax.jit(online_env.make_online_rollout(ENV, sample_action, num_samples=40,
                                                     num_envs=4))
    out = rollout(None, params, None, jax.random.PRNGKey(0))
    first = np.asarray(out.transitions.observations[:4])
    env = gym.make(ENV)
    init = np.concatenate([env.unwrapped.init_qpos[1:], env.unwrapped.init_qvel])
    assert np.all(np.abs(first - init) <= 0.005 + 1e-6)
    assert len({tuple(row) for row in first.round(6)}) == 4  # four different resets


def test_rollout_refuses_samples_that_do_not_split_over_the_envs():
    sample_action, _ = _policy(1.0)
    with pytest.raises(ValueError, match="mb2po.rollout_samples=10 must be a positive multiple"):
        online_env.make_online_rollout(ENV, sample_action, num_samples=10, num_envs=3)


def test_fine_tuning_on_online_rows_regenerates_its_buffer_exactly():
    """In the fine-tuning loop (``rollout=``), a checkpoint without rows
    rebuilds each slot bit for bit from the slot's policy and key: a run on
    real episodes resumes exactly like one on model rollouts."""
    from mb2po_jax import mb2po
    from mb2po_jax.agents import awac
    from mb2po_jax.model import buffer as model_buffer
    from mb2po_jax.transitions import Transitions

    agent = awac.make_awac(11, 3, awac.AWACConfig(hidden_dims=(16, 16), num_quantiles=4,
                                                  num_advantage_samples=2, loss_chunk_size=16))
    rng = np.random.default_rng(0)
    n = 64
    data = Transitions(
        observations=jnp.asarray(rng.normal(size=(n, 11)), jnp.float32),
        actions=jnp.asarray(rng.uniform(-0.9, 0.9, (n, 3)), jnp.float32),
        rewards=jnp.ones(n), next_observations=jnp.asarray(rng.normal(size=(n, 11)), jnp.float32),
        terminals=jnp.zeros(n), timeouts=jnp.zeros(n))
    config = mb2po.FineTuningConfig(rollout_samples=60, batch_size=16, omega=0.25,
                                    updates_per_iteration=3, buffer_iterations=2,
                                    buffer_checkpoint="regenerate")
    rollout = online_env.make_online_rollout(ENV, agent.sample_action, num_samples=60, num_envs=3)
    loop = mb2po.make_fine_tuning(agent, None, None, config, obs_dim=11, act_dim=3,
                                  rollout=rollout)
    state = loop.init(agent.init(jax.random.PRNGKey(0)))
    reference = state.agent
    keys = [jax.random.PRNGKey(10 + i) for i in range(3)]  # wraps the 2-slot ring
    for key in keys:
        state, metrics = loop.step(state, None, data, key, reference)
    assert float(metrics["buffer_valid_rows"]) == 120.0
    saved = mb2po.slot_checksums(state.buffer)
    rebuilt = model_buffer.init_buffer(2, 60, 11, 3)
    for i in (1, 2):  # the iterations the ring still holds, oldest first
        rebuilt = loop.regenerate_slot(rebuilt, state.policies, None, data.observations,
                                       keys[i], jnp.int32(i))
    # The slots were filled in the order 1, 0 (iteration 2 wrapped to slot 0).
    np.testing.assert_array_equal(np.sort(np.asarray(mb2po.slot_checksums(rebuilt))),
                                  np.sort(np.asarray(saved)))
