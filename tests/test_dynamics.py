"""The dynamics ensemble: it recovers a known system's mean and noise, members
draw their own batches, the bounds hold, and elites are the best members."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np

from mb2po_jax import dynamics
from mb2po_jax.data import Transitions

OBS_DIM, ACT_DIM = 3, 2
DELTA_NOISE = np.array([0.05, 0.1, 0.2], np.float32)
REWARD_NOISE = 0.3


def _true_mean(s: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    delta = np.stack([0.5 * a[:, 0], np.sin(s[:, 0]) + 0.3 * a[:, 1], -0.2 * s[:, 2]], axis=1)
    reward = s[:, 1] - 0.5 * a[:, 0] ** 2
    return delta, reward


def _synthetic(n: int, seed: int = 0) -> Transitions:
    rng = np.random.default_rng(seed)
    s = rng.normal(size=(n, OBS_DIM)).astype(np.float32)
    a = rng.uniform(-1, 1, size=(n, ACT_DIM)).astype(np.float32)
    delta, reward = _true_mean(s, a)
    delta = delta + DELTA_NOISE * rng.normal(size=delta.shape)
    reward = reward + REWARD_NOISE * rng.normal(size=reward.shape)
    zeros = np.zeros(n, np.float32)
    return Transitions(
        observations=jnp.asarray(s), actions=jnp.asarray(a), rewards=jnp.asarray(reward, jnp.float32),
        next_observations=jnp.asarray(s + delta, jnp.float32), terminals=jnp.asarray(zeros),
        timeouts=jnp.asarray(zeros),
    )


def _small(**overrides) -> dynamics.DynamicsConfig:
    values = dict(num_members=3, num_elites=3, hidden_dims=(64, 64), learning_rate=3e-3)
    values.update(overrides)
    return dynamics.DynamicsConfig(**values)


def test_fit_recovers_known_mean_and_noise() -> None:
    data = dynamics.make_dynamics_data(_synthetic(8000))
    train, holdout = dynamics.split_holdout(data, jax.random.PRNGKey(0), 0.1, 1000)
    model = dynamics.make_dynamics(OBS_DIM, ACT_DIM, _small())
    state = model.init(jax.random.PRNGKey(1), train)
    train_steps = dynamics.make_train_steps(model.update, 3, 256, 500)
    for i in range(6):
        state, metrics = train_steps(state, train, jax.random.PRNGKey(10 + i))
    assert np.isfinite(float(metrics["dynamics_loss"]))

    s = np.random.default_rng(5).normal(size=(500, OBS_DIM)).astype(np.float32) * 0.8
    a = np.random.default_rng(6).uniform(-1, 1, size=(500, ACT_DIM)).astype(np.float32)
    mean, logvar = model.predict(state, jnp.asarray(s), jnp.asarray(a))
    chex.assert_shape([mean, logvar], (3, 500, OBS_DIM + 1))
    true_delta, true_reward = _true_mean(s, a)
    truth = np.concatenate([true_delta, true_reward[:, None]], axis=1)
    noise = np.concatenate([DELTA_NOISE, [REWARD_NOISE]])
    # Mean error well below the noise it is learned through.
    rmse = np.sqrt(np.mean((np.asarray(mean) - truth) ** 2, axis=(0, 1)))
    assert np.all(rmse < 0.5 * noise + 0.03), (rmse, noise)
    # The learned std matches the true noise per dimension (within 25 %).
    std = np.sqrt(np.exp(np.asarray(logvar))).mean(axis=(0, 1))
    np.testing.assert_allclose(std, noise, rtol=0.25)

    val = model.validate(state, holdout)
    chex.assert_shape([val["val_mse"], val["val_nll"]], (3,))
    # Held-out MSE ~ the noise variance (the irreducible part).
    assert float(val["val_mse"].mean()) < 1.5 * float(np.mean(noise ** 2))


def test_members_draw_own_batches_and_differ() -> None:
    data = dynamics.make_dynamics_data(_synthetic(500))
    model = dynamics.make_dynamics(OBS_DIM, ACT_DIM, _small())
    state = model.init(jax.random.PRNGKey(0), data)
    leaves = jax.tree.leaves(state.params)
    assert all(leaf.shape[0] == 3 for leaf in leaves)
    state, _ = dynamics.make_train_steps(model.update, 3, 32, 5)(state, data, jax.random.PRNGKey(1))
    mean, _ = model.predict(state, data.inputs[:4, :OBS_DIM], data.inputs[:4, OBS_DIM:])
    assert not np.allclose(mean[0], mean[1])


def test_logvar_stays_within_learned_bounds() -> None:
    net = dynamics.GaussianMLP(output_dim=2, hidden_dims=(8,))
    params = net.init(jax.random.PRNGKey(0), jnp.zeros((1, 3)))
    params = jax.tree.map(lambda x: x * 100.0, params)  # extreme raw outputs
    params["params"]["max_logvar"] = jnp.array([0.5, 1.0])
    params["params"]["min_logvar"] = jnp.array([-10.0, -3.0])
    x = 10.0 * jax.random.normal(jax.random.PRNGKey(1), (256, 3))
    _, logvar = net.apply(params, x)
    high, low = np.array([0.5, 1.0]), np.array([-10.0, -3.0])
    # Soft bounds: below by min_logvar, above by min + softplus(max - min)
    # (max plus a slack that vanishes as the bounds move apart).
    upper = low + np.log1p(np.exp(high - low))
    assert np.all(logvar <= upper + 1e-5) and np.all(logvar >= low - 1e-5)
    assert np.any(logvar > high - 0.1) and np.any(logvar < low + 0.1)  # both bounds reached


def test_gaussian_nll_matches_scipy_style_reference() -> None:
    mean, logvar, target = jnp.array([[0.5, -1.0]]), jnp.array([[0.2, -0.7]]), jnp.array([[1.0, 0.0]])
    var = np.exp(np.array([0.2, -0.7]))
    expected = sum(
        0.5 * np.log(2 * np.pi * v) + 0.5 * (t - m) ** 2 / v
        for m, v, t in zip([0.5, -1.0], var, [1.0, 0.0])
    )
    np.testing.assert_allclose(float(dynamics.gaussian_nll(mean, logvar, target)[0]), expected, rtol=1e-6)


def test_elites_are_lowest_validation_mse() -> None:
    data = dynamics.make_dynamics_data(_synthetic(400))
    model = dynamics.make_dynamics(OBS_DIM, ACT_DIM, _small(num_members=4, num_elites=2))
    state = model.init(jax.random.PRNGKey(0), data)
    # Spoil members 0 and 2 so they are clearly the worst.
    params = state.params
    last = params["params"]["Dense_2"]["bias"]
    params["params"]["Dense_2"]["bias"] = last.at[jnp.array([0, 2])].add(50.0)
    state = model.select_elites(state.replace(params=params), data)
    np.testing.assert_array_equal(np.asarray(state.elites), [1, 3])


def test_holdout_split_is_disjoint_and_sized() -> None:
    data = dynamics.make_dynamics_data(_synthetic(100))
    train, holdout = dynamics.split_holdout(data, jax.random.PRNGKey(0), 0.2, 15)
    assert holdout.inputs.shape[0] == 15 and train.inputs.shape[0] == 85
    rows = {tuple(np.asarray(r)) for r in train.inputs} & {tuple(np.asarray(r)) for r in holdout.inputs}
    assert not rows
