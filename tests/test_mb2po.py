"""One MB2PO iteration: the omega split, determinism, and what it trains on."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mb2po_jax import mb2po
from mb2po_jax.model import buffer, dynamics, rollout
from mb2po_jax.agents import awac
from mb2po_jax.transitions import Transitions

OBS_DIM, ACT_DIM = 3, 2


def _dataset(n=200, seed=0) -> Transitions:
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, OBS_DIM)).astype(np.float32)
    return Transitions(
        observations=jnp.asarray(obs),
        actions=jnp.asarray(rng.uniform(-0.9, 0.9, (n, ACT_DIM)), jnp.float32),
        rewards=jnp.asarray(rng.normal(size=n), jnp.float32),
        next_observations=jnp.asarray(obs + 0.1 * rng.normal(size=obs.shape), jnp.float32),
        terminals=jnp.zeros(n), timeouts=jnp.zeros(n),
    )


@pytest.mark.parametrize("omega, batch, expected", [(0.01, 1024, 10), (0.8, 1024, 819), (0.05, 1024, 51),
                                                    (0.5, 3, 2), (0.0, 8, 0), (1.0, 8, 8)])
def test_real_batch_size_rounds_half_up(omega, batch, expected) -> None:
    assert mb2po.real_batch_size(omega, batch) == expected


def test_real_batch_size_rejects_bad_omega() -> None:
    with pytest.raises(ValueError, match="omega=1.5"):
        mb2po.real_batch_size(1.5, 10)


def test_mixed_batch_split_is_exact() -> None:
    data = _dataset()
    data = data.replace(timeouts=jnp.full_like(data.rewards, 7.0))  # tags dataset rows
    buf = buffer.init_buffer(2, 50, OBS_DIM, ACT_DIM)
    buf = buffer.insert(buf, jax.tree.map(lambda x: x[:50], _dataset(seed=1)), jnp.ones(50, bool))
    batch = mb2po.mixed_batch(data, buf, jax.random.PRNGKey(0), 13, 51)
    tags = np.asarray(batch.timeouts)
    assert tags.shape == (64,)
    np.testing.assert_array_equal(tags[:13], 7.0)
    np.testing.assert_array_equal(tags[13:], 0.0)


def _setup(alpha=1.0):
    agent = awac.make_awac(OBS_DIM, ACT_DIM, awac.AWACConfig(
        hidden_dims=(16, 16), num_quantiles=4, num_advantage_samples=2, loss_chunk_size=16, alpha=alpha))
    dyn = dynamics.make_dynamics(OBS_DIM, ACT_DIM, dynamics.DynamicsConfig(num_members=3, num_elites=3,
                                                                           hidden_dims=(16,)))
    data = _dataset()
    dyn_state = dyn.init(jax.random.PRNGKey(1), dynamics.make_dynamics_data(data))
    never = lambda o, a, n: jnp.zeros(o.shape[:-1], bool)  # noqa: E731
    step = rollout.make_model_step(dyn, agent.sample_action, never, penalty_coef=1.0, block_size=32)
    roll = rollout.make_rollout(step, horizon=2, num_samples=64)
    iteration = mb2po.make_iteration(agent, roll, batch_size=16, omega=0.25, num_updates=5)
    return agent, dyn_state, data, iteration


def test_iteration_is_deterministic_and_fills_the_buffer() -> None:
    agent, dyn_state, data, iteration = _setup()
    init = agent.init(jax.random.PRNGKey(0))

    def run(seed_key):
        buf = buffer.init_buffer(3, 64, OBS_DIM, ACT_DIM)
        state = init
        all_metrics = []
        for i in range(4):  # wraps the 3-slot buffer
            state, buf, metrics = iteration(state, buf, dyn_state, data, jax.random.fold_in(seed_key, i))
            all_metrics.append(jax.device_get(metrics))
        return state, buf, all_metrics

    state_a, buf_a, metrics_a = run(jax.random.PRNGKey(5))
    state_b, _, metrics_b = run(jax.random.PRNGKey(5))
    _, _, metrics_c = run(jax.random.PRNGKey(6))
    for x, y in zip(jax.tree.leaves(state_a), jax.tree.leaves(state_b)):
        np.testing.assert_array_equal(x, y)
    assert metrics_a == metrics_b and metrics_a != metrics_c
    assert int(state_a.step) == 20
    assert int(buf_a.num_inserted) == 4
    np.testing.assert_array_equal(np.asarray(buf_a.counts), [64, 64, 64])
    for key in ("critic_loss", "policy_loss", "rollout_uncertainty_mean", "rollout_termination_rate",
                "buffer_valid_rows", "q_data_max"):
        assert np.isfinite(metrics_a[-1][key])
    # The peak statistic is the max over the iteration's updates, not a mean.
    assert metrics_a[-1]["q_data_max"] >= metrics_a[-1]["q_data_mean"]
