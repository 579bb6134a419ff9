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


def test_diagnostics_weigh_dataset_and_model_rows_apart() -> None:
    """For an AWAC agent the per-iteration diagnostics give the mean AWR
    weight of dataset rows and of model rows, each equal to the agent's own
    weights of the rows the diagnostics sample; the other statistics do not
    depend on whether the agent offers weights."""
    agent, dyn_state, data, iteration = _setup()
    state = agent.init(jax.random.PRNGKey(0))
    # A scaled critic, so weights spread (and differ between row sets).
    state = state.replace(critic_params=jax.tree.map(lambda x: 3.0 * x, state.critic_params))
    buf = buffer.init_buffer(3, 64, OBS_DIM, ACT_DIM)
    state, buf, _ = iteration(state, buf, dyn_state, data, jax.random.PRNGKey(1))
    key = jax.random.PRNGKey(9)
    diag = mb2po.make_diagnostics(agent, num_rows=32)(state, state, buf, data, key)
    without = mb2po.make_diagnostics(agent._replace(awr_weights=None), num_rows=32)(
        state, state, buf, data, key)
    assert set(diag) == set(without) | {"weight_real_mean", "weight_model_mean"}
    for name in without:
        np.testing.assert_array_equal(diag[name], without[name])
    real_key, model_key = jax.random.split(key)
    real = mb2po.sample_batch(data, real_key, 32)
    model = buffer.sample(buf, model_key, 32)
    w_real, w_model = jax.random.split(jax.random.fold_in(key, 1))
    np.testing.assert_allclose(
        diag["weight_real_mean"],
        np.mean(agent.awr_weights(state, real.observations, real.actions, w_real)), rtol=1e-5)
    np.testing.assert_allclose(
        diag["weight_model_mean"],
        np.mean(agent.awr_weights(state, model.observations, model.actions, w_model)), rtol=1e-5)
    assert float(diag["weight_real_mean"]) != float(diag["weight_model_mean"])


def test_fine_tuning_config_defaults_and_paper_tasks() -> None:
    """FineTuningConfig() is the paper's scale; .paper(task) takes the task's
    omega, h and lambda from appendix 7.3 (the same table the experiment
    configs read), overrides on top; an unknown task names the valid ones."""
    from mb2po_jax.pipeline.config import paper_config
    from mb2po_jax import paper

    base = mb2po.FineTuningConfig()
    assert (base.rollout_samples, base.updates_per_iteration, base.buffer_iterations,
            base.batch_size) == (1_000_000, 1000, 100, 1024)
    for task in paper.MB2PO_TABLE:
        tuned = mb2po.FineTuningConfig.paper(task)
        config = paper_config(task)
        assert (tuned.omega, tuned.horizon, tuned.penalty_coef) == (
            config.mb2po.omega, config.mb2po.horizon, config.mb2po.penalty_coef)
        assert paper.mb2po_hyperparameters(task).alpha == config.mb2po.alpha
    assert mb2po.FineTuningConfig.paper("walker2d-mixed").omega == 0.01
    assert mb2po.FineTuningConfig.paper("halfcheetah-mixed").horizon == 5
    assert mb2po.FineTuningConfig.paper("hopper-mixed", rollout_samples=500).rollout_samples == 500
    with pytest.raises(ValueError, match="Unknown paper task 'hopper-replay'.*hopper-mixed"):
        mb2po.FineTuningConfig.paper("hopper-replay")
