"""The conservative MDP step and the h-step rollout."""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mb2po_jax import networks
from mb2po_jax.model import dynamics, penalties, rollout

OBS_DIM, ACT_DIM, D = 3, 2, 4  # D = obs_dim + 1 (delta s, r)


def test_uncertainty_rules_against_hand_computation() -> None:
    # 2 members, 1 row, D = 2: stds (1, 2) and (3, 0.5).
    std = np.array([[[1.0, 2.0]], [[3.0, 0.5]]])
    logvar = jnp.asarray(np.log(std**2))
    # max_i ||sigma_i||_2 = max(sqrt(5), sqrt(9.25)).
    np.testing.assert_allclose(penalties.max_std_norm(None, logvar), [np.sqrt(9.25)], rtol=1e-6)
    # max_i ||diag(sigma_i^2)||_F = max(sqrt(1 + 16), sqrt(81 + 0.0625)).
    np.testing.assert_allclose(penalties.max_frobenius(None, logvar), [np.sqrt(81.0625)], rtol=1e-6)
    with pytest.raises(ValueError, match=r"mb2po\.uncertainty='mean'.*max_frobenius.*max_std_norm"):
        penalties.get_penalty("mean")


def test_registered_penalty_reaches_the_rollout_step() -> None:
    dyn, state, policy, policy_params = _models()
    obs = jax.random.normal(jax.random.PRNGKey(2), (8, OBS_DIM))
    sample = functools.partial(networks.sample_per_row, policy)

    @penalties.register_penalty("test_constant_two")
    def constant(means, logvars):
        return jnp.full(means.shape[1:-1], 2.0)

    try:
        out = rollout.make_model_step(dyn, sample, _never, penalty_coef=1.5,
                                      uncertainty_rule="test_constant_two")(
            state, policy_params, obs, jax.random.PRNGKey(3))
        np.testing.assert_allclose(out.uncertainty, 2.0)
        np.testing.assert_allclose(out.penalized_rewards, out.model_rewards - 3.0, rtol=1e-6)
        with pytest.raises(ValueError, match="already registered"):
            penalties.register_penalty("test_constant_two")(constant)
    finally:
        del penalties.PENALTIES["test_constant_two"]


def _models(num_members=3, elites=None):
    dyn = dynamics.make_dynamics(
        OBS_DIM, ACT_DIM,
        dynamics.DynamicsConfig(num_members=num_members, num_elites=num_members, hidden_dims=(16,)),
    )
    data = dynamics.DynamicsData(jnp.ones((4, OBS_DIM + ACT_DIM)), jnp.ones((4, D)))
    state = dyn.init(jax.random.PRNGKey(0), data)
    if elites is not None:
        state = state.replace(elites=jnp.asarray(elites, jnp.int32))
    policy = networks.TanhGMMPolicy(action_dim=ACT_DIM, hidden_dims=(16,))
    policy_params = policy.init(jax.random.PRNGKey(1), jnp.zeros((1, OBS_DIM)))
    return dyn, state, policy, policy_params


def _never(obs, act, next_obs):
    return jnp.zeros(obs.shape[:-1], bool)


def test_step_penalty_members_and_block_independence() -> None:
    dyn, state, policy, policy_params = _models(elites=[0, 2])
    # Near-deterministic members: (s' - s, r) must equal one elite's mean.
    params = state.params
    params["params"]["min_logvar"] = jnp.full_like(params["params"]["min_logvar"], -30.0)
    params["params"]["max_logvar"] = jnp.full_like(params["params"]["max_logvar"], -29.0)
    state = state.replace(params=params)
    obs = jax.random.normal(jax.random.PRNGKey(2), (300, OBS_DIM))
    step = rollout.make_model_step(dyn, functools.partial(networks.sample_per_row, policy), _never, penalty_coef=2.5, block_size=64)
    out = jax.jit(step)(state, policy_params, obs, jax.random.PRNGKey(3))
    chex.assert_shape([out.next_observations], (300, OBS_DIM))
    chex.assert_shape([out.penalized_rewards, out.uncertainty, out.dones], (300,))

    mean, logvar = dyn.predict(state, obs, out.actions)
    got = np.concatenate([np.asarray(out.next_observations - obs), np.asarray(out.model_rewards)[:, None]], 1)
    dist = np.abs(got[None] - np.asarray(mean)).max(-1)  # [N, rows]
    closest = dist.argmin(0)
    assert np.all(dist.min(0) < 1e-4)
    assert set(closest) == {0, 2}  # only elites, both of them
    assert 0.35 < np.mean(closest == 0) < 0.65
    expected_u = penalties.max_std_norm(None, logvar[jnp.array([0, 2])])
    np.testing.assert_allclose(out.uncertainty, expected_u, rtol=1e-5)
    np.testing.assert_allclose(out.penalized_rewards, out.model_rewards - 2.5 * expected_u, rtol=1e-5, atol=1e-6)

    # The block size is a memory setting: the numbers do not depend on it.
    other = rollout.make_model_step(dyn, functools.partial(networks.sample_per_row, policy), _never, penalty_coef=2.5, block_size=7)
    out7 = jax.jit(other)(state, policy_params, obs, jax.random.PRNGKey(3))
    for a, b in zip(jax.tree.leaves(out), jax.tree.leaves(out7)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_rollout_masks_after_termination() -> None:
    dyn, state, policy, policy_params = _models()

    def done_if_positive(obs, act, next_obs):  # ~half the rows end at each step
        return next_obs[..., 0] > obs[..., 0]

    step = rollout.make_model_step(dyn, functools.partial(networks.sample_per_row, policy), done_if_positive, penalty_coef=1.0, block_size=32)
    horizon, samples = 4, 400
    run = jax.jit(rollout.make_rollout(step, horizon=horizon, num_samples=samples))
    pool = jax.random.normal(jax.random.PRNGKey(5), (50, OBS_DIM))
    result = run(state, policy_params, pool, jax.random.PRNGKey(6))
    chex.assert_shape(result.transitions.observations, (samples, OBS_DIM))
    valid = np.asarray(result.valid).reshape(horizon, -1)
    done = np.asarray(result.transitions.terminals).reshape(horizon, -1).astype(bool)
    assert valid[0].all()
    for t in range(horizon - 1):
        np.testing.assert_array_equal(valid[t + 1], valid[t] & ~done[t])
    assert 0 < valid[-1].mean() < 0.5  # terminations happened, some survived
    # Start states come from the pool; consecutive valid steps chain s' -> s.
    obs = np.asarray(result.transitions.observations).reshape(horizon, -1, OBS_DIM)
    nxt = np.asarray(result.transitions.next_observations).reshape(horizon, -1, OBS_DIM)
    pool_rows = {tuple(r) for r in np.asarray(pool)}
    assert all(tuple(r) in pool_rows for r in obs[0])
    np.testing.assert_array_equal(obs[1][valid[1]], nxt[0][valid[1]])
    # Statistics are over valid rows only.
    w = valid.reshape(-1)
    np.testing.assert_allclose(result.stats["rollout_termination_rate"], done.reshape(-1)[w].mean(), rtol=1e-6)
    np.testing.assert_allclose(result.stats["rollout_valid_fraction"], w.mean(), rtol=1e-6)
    assert np.all(np.asarray(result.transitions.timeouts) == 0)


def test_rollout_rejects_samples_not_multiple_of_horizon() -> None:
    with pytest.raises(ValueError, match="multiple of"):
        rollout.make_rollout(lambda *a: None, horizon=3, num_samples=100)


def test_next_state_mean_takes_an_elites_mean_and_sample_adds_its_noise() -> None:
    """``next_state='mean'``: (s' - s, r) is exactly one elite's mean (the same
    elite the sampling path picks, from the same keys); 'sample' adds that
    elite's Gaussian noise; anything else is refused by name."""
    dyn, state, policy, policy_params = _models(elites=[0, 2])
    obs = jax.random.normal(jax.random.PRNGKey(2), (64, OBS_DIM))
    sample = functools.partial(networks.sample_per_row, policy)
    key = jax.random.PRNGKey(3)
    by_mean = rollout.make_model_step(dyn, sample, _never, penalty_coef=1.0,
                                      next_state="mean")(state, policy_params, obs, key)
    sampled = rollout.make_model_step(dyn, sample, _never, penalty_coef=1.0)(
        state, policy_params, obs, key)
    np.testing.assert_array_equal(by_mean.actions, sampled.actions)
    mean, logvar = dyn.predict(state, obs, by_mean.actions)  # [N, rows, D]
    got = np.concatenate([np.asarray(by_mean.next_observations - obs),
                          np.asarray(by_mean.model_rewards)[:, None]], axis=1)
    elite_means = np.asarray(mean)[[0, 2]]  # [E, rows, D]
    distance = np.abs(elite_means - got[None]).max(-1)  # [E, rows]
    assert np.all(distance.min(0) < 1e-5)  # each row is one elite's mean
    # The same elite with its noise: sampled - mean = sigma * z, z standard normal.
    member = distance.argmin(0)
    sigma = np.exp(0.5 * np.asarray(logvar)[[0, 2]])[member, np.arange(64)]
    z = (np.concatenate([np.asarray(sampled.next_observations - obs),
                         np.asarray(sampled.model_rewards)[:, None]], axis=1) - got) / sigma
    assert 0.5 < z.std() < 1.5 and abs(z.mean()) < 0.3
    np.testing.assert_allclose(by_mean.uncertainty, sampled.uncertainty, rtol=1e-6)
    with pytest.raises(ValueError, match=r"mb2po\.next_state='median'.*'sample', 'mean'"):
        rollout.make_model_step(dyn, sample, _never, penalty_coef=1.0, next_state="median")
