"""The dynamics ensemble: it recovers a known system's mean and noise, members
draw their own batches, the bounds hold, and elites are the best members."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mb2po_jax.model import dynamics
from mb2po_jax.transitions import Transitions

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


# --------------------------------------------------------------------------
# Early stopping (MOPO's best-holdout snapshots) and the NLL reduction.
# --------------------------------------------------------------------------


def _member(tree, i: int):
    """Member ``i``'s slice of a member-stacked parameter tree, as numpy."""
    return jax.tree.map(lambda x: np.asarray(x[i]), tree)


def _assert_member_equal(a, b, i: int, j: int | None = None) -> None:
    """Member ``i`` of ``a`` is bit-equal to member ``j`` (default ``i``) of ``b``."""
    j = i if j is None else j
    chex.assert_trees_all_equal_structs(a, b)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(np.asarray(x[i]), np.asarray(y[j]))


def _rule(best: np.ndarray, mse: np.ndarray, threshold: float) -> np.ndarray:
    """MOPO's rule in numpy, float64: relative improvement over the best > threshold."""
    best, mse = np.asarray(best, np.float64), np.asarray(mse, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ~np.isfinite(best) | ((best - mse) / best > threshold)


def _assert_check_follows_rule(before, after, mse, threshold) -> np.ndarray:
    """``after = track_best(before)`` given the members' held-out ``mse``:
    improved members snapshot ``before.params`` and their MSE, the others keep
    their snapshot bit for bit; stale_checks resets or counts. Returns the mask."""
    improved = _rule(before.best_val_mse, mse, threshold)
    for i, better in enumerate(improved):
        source = before.params if better else before.best_params
        _assert_member_equal(after.best_params, source, i)
        if better:  # the MSE it was checked at (another jit: equal to float32 rounding)
            np.testing.assert_allclose(np.asarray(after.best_val_mse)[i], mse[i], rtol=1e-6)
        else:
            np.testing.assert_array_equal(np.asarray(after.best_val_mse)[i],
                                          np.asarray(before.best_val_mse)[i])
    expected_stale = 0 if improved.any() else int(before.stale_checks) + 1
    assert after.stale_checks.dtype == jnp.int32 and int(after.stale_checks) == expected_stale
    # The live parameters are untouched by a check.
    chex.assert_trees_all_equal(after.params, before.params)
    return improved


def test_init_has_no_snapshot_yet() -> None:
    data = dynamics.make_dynamics_data(_synthetic(200))
    model = dynamics.make_dynamics(OBS_DIM, ACT_DIM, _small(hidden_dims=(8,)))
    state = model.init(jax.random.PRNGKey(0), data)
    chex.assert_shape(state.best_val_mse, (3,))
    assert np.all(np.isinf(np.asarray(state.best_val_mse)))
    assert state.stale_checks.dtype == jnp.int32 and int(state.stale_checks) == 0
    chex.assert_trees_all_equal(state.best_params, state.params)
    # The first check snapshots every member (anything beats inf) and its MSE.
    checked = jax.jit(model.track_best)(state, data)
    np.testing.assert_allclose(checked.best_val_mse, jax.jit(model.validate)(state, data)["val_mse"],
                               rtol=1e-6)
    assert int(checked.stale_checks) == 0


def test_holdout_early_stopping_picks_the_best_snapshot() -> None:
    """A small ensemble on the known noisy system: checks during training
    follow MOPO's rule; a member spoilt after a check keeps its earlier
    snapshot bit for bit; stale checks count and reset; ``use_best`` gives
    back a model whose held-out MSE is the recorded best."""
    data = dynamics.make_dynamics_data(_synthetic(3000, seed=1))
    train, holdout = dynamics.split_holdout(data, jax.random.PRNGKey(0), 0.1, 300)
    model = dynamics.make_dynamics(OBS_DIM, ACT_DIM, _small(hidden_dims=(32, 32)))
    threshold = model.config.improvement_threshold
    assert threshold == 0.01  # MOPO's 1 %
    train_steps = dynamics.make_train_steps(model.update, 3, 64, 100)
    track_best, use_best = jax.jit(model.track_best), jax.jit(model.use_best)
    val_mse = jax.jit(lambda state: model.validate(state, holdout)["val_mse"])

    state = track_best(model.init(jax.random.PRNGKey(1), train), holdout)
    init_mse = np.asarray(state.best_val_mse)

    # 1. Training improves every member by far more than 1 %: all snapshot.
    state, _ = train_steps(state, train, jax.random.PRNGKey(2))
    mse = np.asarray(val_mse(state))
    assert np.all(mse < 0.5 * init_mse), (mse, init_mse)
    before, state = state, track_best(state, holdout)
    assert _assert_check_follows_rule(before, state, mse, threshold).all()
    good = state  # every member's snapshot is this state's parameters
    chex.assert_trees_all_equal(good.best_params, good.params)

    # 2. Spoil member 1 only: its held-out MSE explodes, the others' does not
    # move, so no member improved and the check is stale.
    rng = np.random.default_rng(3)
    spoilt = jax.tree.map(
        lambda x: x.at[1].add(jnp.asarray(3.0 * rng.normal(size=x.shape[1:]), x.dtype)),
        good.params)
    state = good.replace(params=spoilt)
    mse = np.asarray(val_mse(state))
    assert mse[1] > 10.0 * float(good.best_val_mse[1])
    np.testing.assert_allclose(mse[[0, 2]], np.asarray(good.best_val_mse)[[0, 2]], rtol=1e-6)
    before, state = state, track_best(state, holdout)
    assert not _assert_check_follows_rule(before, state, mse, threshold).any()
    assert int(state.stale_checks) == 1
    chex.assert_trees_all_equal(state.best_params, good.params)  # member 1's too, bit for bit
    before, state = state, track_best(state, holdout)
    assert int(state.stale_checks) == 2
    chex.assert_trees_all_equal(state.best_params, good.params)

    # 3. More training: the unspoilt members improve again (> 1 %) and
    # snapshot, the stale count resets; the spoilt member, still worse than its
    # best, keeps the snapshot from step 1.
    state, _ = train_steps(state, train, jax.random.PRNGKey(4))
    state, _ = train_steps(state, train, jax.random.PRNGKey(5))
    mse = np.asarray(val_mse(state))
    before, state = state, track_best(state, holdout)
    improved = _assert_check_follows_rule(before, state, mse, threshold)
    assert improved.any() and not improved[1], (mse, np.asarray(before.best_val_mse))
    assert int(state.stale_checks) == 0
    _assert_member_equal(state.best_params, good.params, 1)
    for i in np.flatnonzero(improved):
        _assert_member_equal(state.best_params, before.params, i)
        assert not np.array_equal(_member(state.best_params, i)["params"]["Dense_0"]["kernel"],
                                  _member(good.params, i)["params"]["Dense_0"]["kernel"])

    # 4. use_best: the snapshots become the model; its held-out MSE is the
    # recorded best (member 1 far below its spoilt MSE), nothing else changes.
    best = use_best(state)
    chex.assert_trees_all_equal(best.params, state.best_params)
    chex.assert_trees_all_equal(best.opt_state, state.opt_state)
    assert int(best.step) == int(state.step)
    np.testing.assert_allclose(val_mse(best), state.best_val_mse, rtol=1e-6)
    assert float(val_mse(best)[1]) < 0.1 * mse[1]
    # The snapshots' MSE is no worse than the live model's for every member.
    assert np.all(np.asarray(state.best_val_mse) <= mse * (1 + 1e-6))


def test_improvement_below_threshold_does_not_count() -> None:
    data = dynamics.make_dynamics_data(_synthetic(300))
    model = dynamics.make_dynamics(OBS_DIM, ACT_DIM, _small(hidden_dims=(8,)))
    state = model.init(jax.random.PRNGKey(0), data)
    mse = np.asarray(model.validate(state, data)["val_mse"], np.float64)
    other = jax.tree.map(lambda x: x + 1.0, state.params)  # snapshots to tell apart
    # Relative improvements of 0.5 %, 2 % and -10 % (worse) over the best.
    best = np.array([mse[0] / 0.995, mse[1] / 0.98, mse[2] / 1.1], np.float32)
    state = state.replace(best_params=other, best_val_mse=jnp.asarray(best),
                          stale_checks=jnp.asarray(3, jnp.int32))
    track_best = jax.jit(model.track_best)
    checked = track_best(state, data)
    np.testing.assert_array_equal(np.asarray(checked.best_val_mse)[[0, 2]], best[[0, 2]])
    np.testing.assert_allclose(float(checked.best_val_mse[1]), mse[1], rtol=1e-6)
    _assert_member_equal(checked.best_params, other, 0)
    _assert_member_equal(checked.best_params, state.params, 1)
    _assert_member_equal(checked.best_params, other, 2)
    assert int(checked.stale_checks) == 0

    # Only sub-threshold improvements: a stale check.
    sub = np.array([mse[0] / 0.995, mse[1] / 0.999, mse[2] / 1.05], np.float32)
    checked = track_best(state.replace(best_val_mse=jnp.asarray(sub)), data)
    np.testing.assert_array_equal(checked.best_val_mse, sub)
    chex.assert_trees_all_equal(checked.best_params, other)
    assert int(checked.stale_checks) == 4

    # A lower threshold (a config field, not a constant) counts the 0.5 %.
    loose = dynamics.make_dynamics(OBS_DIM, ACT_DIM, _small(hidden_dims=(8,), improvement_threshold=0.003))
    checked = loose.track_best(state.replace(best_val_mse=jnp.asarray(sub)), data)
    np.testing.assert_array_equal(np.asarray(checked.best_val_mse)[1:], sub[1:])
    np.testing.assert_allclose(float(checked.best_val_mse[0]), mse[0], rtol=1e-6)
    _assert_member_equal(checked.best_params, state.params, 0)
    _assert_member_equal(checked.best_params, other, 2)
    assert int(checked.stale_checks) == 0


def _nll_reference(model, state, batch) -> np.ndarray:
    """Per-member training NLL (up to constants), summed over output dims,
    float64: mean over the member's rows of sum_d (y - mu)^2 / var + log var."""
    x = (batch.inputs - state.input_mean) / state.input_std
    mean, logvar = jax.jit(jax.vmap(model.network.apply))(state.params, x)
    mean, logvar = np.asarray(mean, np.float64), np.asarray(logvar, np.float64)
    y = np.asarray(batch.targets, np.float64)
    return np.mean(np.sum((y - mean) ** 2 * np.exp(-logvar) + logvar, axis=-1), axis=-1)


def test_nll_reduction_mean_divides_by_output_dim() -> None:
    data = dynamics.make_dynamics_data(_synthetic(300))
    idx = jnp.asarray(np.random.default_rng(0).integers(0, 300, size=(3, 32)))
    batch = jax.tree.map(lambda x: x[idx], data)  # [N, B, ...]: each member its rows
    out = {}
    for reduction in ("sum", "mean"):
        model = dynamics.make_dynamics(
            OBS_DIM, ACT_DIM, _small(hidden_dims=(16,), bound_coef=0.0, nll_reduction=reduction))
        state = model.init(jax.random.PRNGKey(0), data)
        _, metrics = jax.jit(model.update)(state, batch, jax.random.PRNGKey(1))
        out[reduction] = metrics
    reference = _nll_reference(model, state, batch)  # same params for both (same key)
    d = OBS_DIM + 1
    np.testing.assert_allclose(out["sum"]["train_nll_mean"], reference.mean(), rtol=1e-5)
    np.testing.assert_allclose(out["mean"]["train_nll_mean"], reference.mean() / d, rtol=1e-5)
    # With bound_coef = 0 the loss is the members' summed NLL.
    np.testing.assert_allclose(out["sum"]["dynamics_loss"], reference.sum(), rtol=1e-5)
    np.testing.assert_allclose(out["mean"]["dynamics_loss"], reference.sum() / d, rtol=1e-5)
    # The MSE metric does not depend on the reduction.
    np.testing.assert_array_equal(out["sum"]["train_mse"], out["mean"]["train_mse"])
    assert dynamics.DynamicsConfig().nll_reduction == "sum"


def test_dynamics_config_validation_names_the_field() -> None:
    with pytest.raises(ValueError, match=r"dynamics\.nll_reduction='median'.*'sum'.*'mean'"):
        dynamics.DynamicsConfig(nll_reduction="median")
    with pytest.raises(ValueError, match=r"dynamics\.nll_reduction"):
        dynamics.DynamicsConfig.from_dict({"nll_reduction": "Sum"})
    with pytest.raises(ValueError, match=r"dynamics\.patience=0"):
        dynamics.DynamicsConfig(patience=0)
    config = dynamics.DynamicsConfig.from_dict(
        {"nll_reduction": "mean", "early_stopping": True, "patience": 2,
         "improvement_threshold": 0.05, "batch_size": 7})  # batch_size: not a model field
    assert (config.nll_reduction, config.early_stopping, config.patience,
            config.improvement_threshold) == ("mean", True, 2, 0.05)


def test_use_best_keeps_members_that_were_never_checked() -> None:
    # A state trained without checks (e.g. restored from a run without early
    # stopping) must not be swapped back to its initialisation.
    data = dynamics.make_dynamics_data(_synthetic(2000))
    train, holdout = dynamics.split_holdout(data, jax.random.PRNGKey(0), 0.1, 200)
    model = dynamics.make_dynamics(OBS_DIM, ACT_DIM, _small(hidden_dims=(16, 16)))
    state = model.init(jax.random.PRNGKey(1), train)
    trained, _ = dynamics.make_train_steps(model.update, 3, 64, 50)(state, train, jax.random.PRNGKey(2))
    chex.assert_trees_all_equal(model.use_best(trained).params, trained.params)
    # Only member 0 checked: it takes its snapshot, the others keep their params.
    checked = trained.replace(best_params=state.params,
                              best_val_mse=jnp.array([0.5, jnp.inf, jnp.inf]))
    swapped = model.use_best(checked).params
    _assert_member_equal(swapped, state.params, 0)
    _assert_member_equal(swapped, trained.params, 1)
    _assert_member_equal(swapped, trained.params, 2)
