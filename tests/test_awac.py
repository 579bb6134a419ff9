"""AWAC: the pure pieces (critic target, advantage weights, Q) against slow
float64 numpy references; one update against losses, gradients and the first
Adam step rebuilt by hand from the networks; the soft target update,
determinism; and the scanned ``make_train_steps`` against a Python loop.

Networks are tiny (2 x 32, 8 quantiles) so the whole file runs in seconds.
"""

from __future__ import annotations

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mb2po_jax import networks
from mb2po_jax.agents.awac import (
    AWACConfig,
    advantage_weights,
    critic_target,
    make_awac,
    make_train_steps,
    q_values,
)
from mb2po_jax.transitions import Transitions, sample_batch

EPS = 1e-2
OBS_DIM, ACT_DIM = 3, 2
BATCH = 32
# Tiny networks; tau is large so that a wrong soft-update rate is resolvable
# far above float32 noise (the default 5e-3 would move the target by ~1e-6).
TINY = dict(
    hidden_dims=(32, 32),
    num_quantiles=8,
    num_components=3,
    num_advantage_samples=4,
    tau=0.1,
)
METRIC_KEYS = {
    "critic_loss",
    "q_data_mean",
    "q_data_max",
    "target_return_mean",
    "policy_loss",
    "advantage_mean",
    "advantage_std",
    "weight_mean",
    "weight_clip_fraction",
    "weight_ess",
    "weight_q05",
    "weight_q50",
    "weight_q95",
    "advantage_std_return",
    "advantage_std_h",
    "weight_ess_return",
    "weight_ess_h",
    "weight_clip_fraction_return",
    "weight_clip_fraction_h",
    "log_prob_mean",
    "critic_grad_norm",
    "policy_grad_norm",
}


# --------------------------------------------------------------------------
# Independent float64 references.
# --------------------------------------------------------------------------


def _h_np(x, eps=EPS):
    """h(x) = sign(x) (sqrt(|x| + 1) - 1) + eps x, textbook form, float64."""
    x = np.asarray(x, np.float64)
    return np.sign(x) * (np.sqrt(np.abs(x) + 1.0) - 1.0) + eps * x


def _h_inv_np(x, eps=EPS):
    """h^-1(x) = sign(x) (((sqrt(1 + 4 eps (|x| + 1 + eps)) - 1) / (2 eps))^2 - 1)."""
    x = np.asarray(x, np.float64)
    root = (np.sqrt(1.0 + 4.0 * eps * (np.abs(x) + 1.0 + eps)) - 1.0) / (2.0 * eps)
    return np.sign(x) * (root**2 - 1.0)


def _critic_target_ref(online, target, rewards, terminals, discount, eps=EPS, select_with="online"):
    """Slow per-sample loop. ``select_with="target"`` is the wrong variant
    (selection by the target network), used to show the tests can tell."""
    online, target = np.asarray(online, np.float64), np.asarray(target, np.float64)
    members, batch, n = online.shape
    selector = online if select_with == "online" else target
    out = np.empty((batch, n))
    for b in range(batch):
        member_means = [np.mean(_h_inv_np(selector[m, b], eps)) for m in range(members)]
        chosen = int(np.argmin(member_means))
        z = _h_inv_np(target[chosen, b], eps)  # return space
        returns = float(rewards[b]) + discount * (1.0 - float(terminals[b])) * z
        out[b] = _h_np(returns, eps)
    return out


def _q_min_ref(quantiles, eps=EPS):
    """min over members of the mean return: [M, ..., N] -> [...]."""
    return np.min(np.mean(_h_inv_np(quantiles, eps), axis=-1), axis=0)


def _q_min_h_ref(quantiles):
    """min over members of the mean h-space quantile: [M, ..., N] -> [...]."""
    return np.min(np.mean(np.asarray(quantiles, np.float64), axis=-1), axis=0)


def _ess_ref(weights):
    w = np.asarray(weights, np.float64)
    return np.sum(w) ** 2 / (w.size * np.sum(w ** 2))


def _quantile_huber_ref(pred, target, kappa=1.0):
    """Per-row QR-Huber loss, float64: sum over quantiles, mean over targets."""
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    n = pred.shape[-1]
    taus = (np.arange(n) + 0.5) / n
    u = target[:, None, :] - pred[:, :, None]
    weight = np.abs(taus[None, :, None] - (u < 0))
    huber = np.where(np.abs(u) <= kappa, 0.5 * u**2, kappa * (np.abs(u) - 0.5 * kappa))
    return np.sum(np.mean(weight * huber, axis=-1), axis=-1) / kappa


def _quantile_huber_jnp(pred, target, kappa=1.0):
    """The same loss in jnp with plain autodiff (for reference gradients)."""
    n = pred.shape[-1]
    taus = (jnp.arange(n) + 0.5) / n
    u = target[:, None, :] - pred[:, :, None]
    weight = jnp.abs(taus[None, :, None] - (u < 0))
    huber = jnp.where(jnp.abs(u) <= kappa, 0.5 * u**2, kappa * (jnp.abs(u) - 0.5 * kappa))
    return jnp.sum(jnp.mean(weight * huber, axis=-1), axis=-1) / kappa


def _adam_first_step(params, grads, lr, weight_decay=0.0):
    """Adam's first step written out: bias correction makes m_hat = g and
    v_hat = g^2, so the step is -lr g / (|g| + 1e-8); coupled L2 adds wd * p
    to g first (torch.optim.Adam(weight_decay=...))."""

    def step(p, g):
        p, g = np.asarray(p, np.float64), np.asarray(g, np.float64)
        g = g + weight_decay * p
        return p - lr * g / (np.abs(g) + 1e-8)

    return jax.tree.map(step, params, grads)


# --------------------------------------------------------------------------
# Helpers.
# --------------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _agent(**overrides):
    """(agent, jitted update) for TINY updated with ``overrides``; cached so
    each configuration compiles once per test run."""
    agent = make_awac(OBS_DIM, ACT_DIM, AWACConfig(**{**TINY, **overrides}))
    return agent, jax.jit(agent.update)


# Jitted network calls for the references: one compile per shape instead of
# one per primitive (eager dispatch), which keeps the file fast.
_sample = jax.jit(networks.sample, static_argnums=2)
_log_prob = jax.jit(networks.log_prob)


@functools.partial(jax.jit, static_argnums=0)
def _apply(module, params, *args):
    return module.apply(params, *args)


@functools.partial(jax.jit, static_argnums=0)
def _critic_ref_grads(critic, params, observations, actions, target):
    """Gradient of sum_m mean_b QR-Huber(Z_m(s, a), target) by plain autodiff."""

    def loss(p):
        pred = critic.apply(p, observations, actions)
        return sum(jnp.mean(_quantile_huber_jnp(pred[m], target)) for m in range(pred.shape[0]))

    return jax.grad(loss)(params)


@functools.partial(jax.jit, static_argnums=0)
def _policy_ref_grads(policy, params, observations, actions, weights):
    """Gradient of -mean(log pi(a|s) * w) with constant weights w."""

    def loss(p):
        return -jnp.mean(networks.log_prob(policy.apply(p, observations), actions) * weights)

    return jax.grad(loss)(params)


def _transitions(seed, n):
    """Random float32 transitions (numpy RNG: no per-shape XLA compiles)."""
    rng = np.random.default_rng(seed)
    actions = rng.uniform(-0.99, 0.99, (n, ACT_DIM))
    # Clipped expert data puts actions on the boundary of [-1, 1].
    actions[0] = 1.0
    actions[1, 0] = -1.0
    data = Transitions(
        observations=rng.normal(size=(n, OBS_DIM)),
        actions=actions,
        rewards=2.0 * rng.normal(size=n),
        next_observations=rng.normal(size=(n, OBS_DIM)),
        terminals=rng.uniform(size=n) < 0.3,
        timeouts=rng.uniform(size=n) < 0.1,
    )
    return jax.tree.map(lambda x: jnp.asarray(x, jnp.float32), data)


def _trees_equal(a, b):
    return all(np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _assert_trees_close(actual, expected, rtol, atol):
    chex.assert_trees_all_equal_structs(actual, expected)
    for x, y in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)


def _global_norm(tree):
    return float(np.sqrt(sum(np.sum(np.square(np.asarray(x, np.float64))) for x in jax.tree.leaves(tree))))


# --------------------------------------------------------------------------
# critic_target
# --------------------------------------------------------------------------


@pytest.mark.parametrize("members", [2, 3])
def test_critic_target_matches_numpy_reference(members):
    batch, n, discount = 64, 16, 0.97
    rng = np.random.default_rng(members)
    # h-space quantiles of a few units: returns of order +-10..100.
    online = jnp.asarray(3.0 * rng.normal(size=(members, batch, n)), jnp.float32)
    target = jnp.asarray(3.0 * rng.normal(size=(members, batch, n)), jnp.float32)
    rewards = jnp.asarray(2.0 * rng.normal(size=batch), jnp.float32)
    terminals = jnp.asarray(rng.uniform(size=batch) < 0.3, jnp.float32)

    out = critic_target(online, target, rewards, terminals, discount, EPS)
    chex.assert_shape(out, (batch, n))
    chex.assert_type(out, jnp.float32)
    expected = _critic_target_ref(online, target, rewards, terminals, discount)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)

    # The data exercises what matters: some samples terminal, and samples where
    # online and target networks disagree on the lower member; there the
    # target-selected variant is far from the output.
    term = np.asarray(terminals, bool)
    assert 0 < term.sum() < batch
    np.testing.assert_allclose(out[term], np.broadcast_to(_h_np(rewards)[term, None], (term.sum(), n)), rtol=1e-5)
    q_online = np.mean(_h_inv_np(online), -1).argmin(0)
    q_target = np.mean(_h_inv_np(target), -1).argmin(0)
    disagree = (q_online != q_target) & ~term
    assert disagree.sum() >= 5
    wrong = _critic_target_ref(online, target, rewards, terminals, discount, select_with="target")
    assert np.all(np.max(np.abs(wrong[disagree] - np.asarray(out)[disagree]), axis=-1) > 1e-2)


def test_critic_target_selection_hand_built():
    """Three samples, N = 4, two members.

    0: online says member 0 is lower, target says member 1 -> member 0's
       target quantiles are used (select with online, evaluate with target).
    1: the mirror image -> member 1's target quantiles.
    2: online member 0 = [0, 0, 0, 10] (h-space mean 2.5, return mean ~25),
       member 1 = [3, 3, 3, 3] (h-space mean 3, return mean ~14): selection
       compares means in return space, so member 1 is chosen although its
       h-space mean is higher.
    Then samples 0 and 2 are made terminal.
    """
    online = jnp.array(
        [
            [[-1.0, 0.0, 0.5, 1.0], [2.0, 2.5, 3.0, 3.5], [0.0, 0.0, 0.0, 10.0]],
            [[1.0, 1.5, 2.0, 2.5], [-2.0, -1.0, 0.0, 1.0], [3.0, 3.0, 3.0, 3.0]],
        ]
    )
    target = jnp.array(
        [
            [[4.0, 5.0, 6.0, 7.0], [-3.0, -2.0, -1.0, 0.0], [1.0, 2.0, 3.0, 4.0]],
            [[-4.0, -3.0, -2.0, -1.0], [5.0, 6.0, 7.0, 8.0], [-1.0, 0.0, 1.0, 2.0]],
        ]
    )
    rewards = jnp.array([1.0, -0.5, 2.0])
    terminals = jnp.array([0.0, 0.0, 0.0])
    discount = 0.9
    out = critic_target(online, target, rewards, terminals, discount, EPS)
    chex.assert_shape(out, (3, 4))

    # The return-space premise of sample 2 holds.
    assert np.mean(_h_inv_np(online[0, 2])) > np.mean(_h_inv_np(online[1, 2]))
    assert np.mean(online[0, 2]) < np.mean(online[1, 2])

    chosen = [0, 1, 1]
    for b, m in enumerate(chosen):
        expected = _h_np(float(rewards[b]) + discount * _h_inv_np(target[m, b]))
        np.testing.assert_allclose(out[b], expected, rtol=1e-5, atol=1e-6)
        other = _h_np(float(rewards[b]) + discount * _h_inv_np(target[1 - m, b]))
        assert np.max(np.abs(np.asarray(out[b]) - other)) > 0.5
    np.testing.assert_allclose(out, _critic_target_ref(online, target, rewards, terminals, discount), rtol=1e-5)

    # A terminal cuts the bootstrap: every quantile is h(r), whatever Z' is.
    out_term = critic_target(online, target, rewards, jnp.array([1.0, 0.0, 1.0]), discount, EPS)
    np.testing.assert_allclose(out_term[0], np.full(4, _h_np(1.0)), rtol=1e-6)
    np.testing.assert_allclose(out_term[2], np.full(4, _h_np(2.0)), rtol=1e-6)
    np.testing.assert_allclose(out_term[1], out[1], rtol=1e-6)


# --------------------------------------------------------------------------
# advantage_weights and q_values
# --------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [1.0, 0.3, 3.0])
def test_advantage_weights_clamp_and_monotone(alpha):
    max_weight = 20.0
    log_max = np.log(max_weight)

    below = alpha * np.linspace(-30.0, log_max - 1e-3, 1001)
    w = advantage_weights(jnp.asarray(below, jnp.float32), alpha, max_weight)
    chex.assert_shape(w, below.shape)
    # float32 rounding of A / alpha costs |A / alpha| ulp of relative error in exp.
    np.testing.assert_allclose(w, np.exp(np.float64(np.float32(below)) / alpha), rtol=5e-6, atol=0)
    assert np.all(np.asarray(w) < max_weight)

    above = np.array([log_max + 1e-3, 5.0, 100.0, 1e6, 1e30, np.inf]) * alpha
    w = np.asarray(advantage_weights(jnp.asarray(above, jnp.float32), alpha, max_weight))
    assert np.all(np.isfinite(w))
    # The clamp value itself: exp(log(20)) is 20 up to float32 rounding of the
    # log (on XLA:CPU exactly 20.0); a few ulp, and never below the
    # weight_clip_fraction threshold max_weight * (1 - 1e-6).
    np.testing.assert_allclose(w, max_weight, rtol=1e-6, atol=0)
    assert np.all(w >= max_weight * (1 - 1e-6))
    assert np.all(w == w[0])  # one value for every clamped input

    # Huge negative advantages underflow to 0 rather than NaN.
    w = np.asarray(advantage_weights(jnp.array([-1e6, -1e30, -np.inf]), alpha, max_weight))
    np.testing.assert_array_equal(w, 0.0)

    # Monotone on a sweep across the clamp; strictly increasing below it.
    a = jnp.linspace(-50.0, 50.0, 20001) * alpha
    w = np.asarray(advantage_weights(a, alpha, max_weight))
    assert np.all(np.diff(w) >= 0)
    strictly = np.asarray(a[1:]) / alpha < log_max - 1e-3
    assert np.all(np.diff(w)[strictly & (w[1:] > 1e-30)] > 0)

    # The gradient is finite everywhere too (0 past the clamp).
    g = jax.vmap(jax.grad(lambda x: advantage_weights(x, alpha, max_weight)))(jnp.array([1e6, 0.5, -1e6]))
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g, [0.0, np.exp(0.5 / alpha) / alpha, 0.0], rtol=1e-6)


def test_advantage_weights_other_max_weight():
    w = advantage_weights(jnp.array([0.0, 1.0, 2.0, 1e6]), 1.0, 5.0)
    np.testing.assert_allclose(w, [1.0, np.e, 5.0, 5.0], rtol=1e-6)


def test_q_values_is_return_space_mean_and_min_over_members():
    rng = np.random.default_rng(1)
    quantiles = jnp.asarray(4.0 * rng.normal(size=(2, 5, 7, 9)), jnp.float32)  # [M, K, B, N]
    q = q_values(quantiles, EPS)
    chex.assert_shape(q, (2, 5, 7))
    np.testing.assert_allclose(q, np.mean(_h_inv_np(quantiles), axis=-1), rtol=1e-5, atol=1e-5)

    q_min = jnp.min(q, axis=0)
    chex.assert_shape(q_min, (5, 7))
    expected = _q_min_ref(quantiles)
    np.testing.assert_allclose(q_min, expected, rtol=1e-5, atol=1e-5)
    # Not the h-space mean mapped back (Jensen: h^-1 is convex for x > 0).
    wrong = np.min(_h_inv_np(np.mean(np.asarray(quantiles, np.float64), axis=-1)), axis=0)
    assert np.max(np.abs(wrong - expected)) > 1.0
    # Both members matter (the min picks each somewhere).
    picks = np.argmin(np.asarray(q), axis=0)
    assert 0 < picks.mean() < 1


# --------------------------------------------------------------------------
# One update
# --------------------------------------------------------------------------


def test_update_step_metrics_soft_target_and_determinism():
    agent, update = _agent()
    tau = agent.config.tau
    state0 = agent.init(jax.random.PRNGKey(0))
    batch = _transitions(1, BATCH)
    k1, k2 = jax.random.PRNGKey(2), jax.random.PRNGKey(3)

    state1, m1 = update(state0, batch, k1)
    assert state1.step.dtype == jnp.int32 and int(state0.step) == 0 and int(state1.step) == 1
    assert set(m1) == METRIC_KEYS
    for name, value in m1.items():
        chex.assert_shape(value, ())
        assert np.isfinite(value), name
    assert 0.0 <= float(m1["weight_clip_fraction"]) <= 1.0

    # Every parameter leaf of both networks moved.
    for old, new in ((state0.policy_params, state1.policy_params), (state0.critic_params, state1.critic_params)):
        chex.assert_trees_all_equal_structs(old, new)
        for a, b in zip(jax.tree.leaves(old), jax.tree.leaves(new)):
            assert not np.array_equal(a, b)

    # Soft update: target_new = tau * online_new + (1 - tau) * target_old.
    # After step 1 target_old == online_old; step 2 checks the general case.
    state2, _ = update(state1, _transitions(4, BATCH), k2)
    assert int(state2.step) == 2
    for old, new in ((state0, state1), (state1, state2)):
        expected = jax.tree.map(
            lambda online, target: tau * np.asarray(online, np.float64) + (1 - tau) * np.asarray(target, np.float64),
            new.critic_params,
            old.critic_target_params,
        )
        _assert_trees_close(new.critic_target_params, expected, rtol=1e-6, atol=1e-8)
        # ... and the target is resolvably neither the old target nor the online net.
        gap = max(
            float(np.max(np.abs(a - b)))
            for a, b in zip(jax.tree.leaves(new.critic_target_params), jax.tree.leaves(old.critic_target_params))
        )
        assert gap > 1e-5
        assert not _trees_equal(new.critic_target_params, new.critic_params)

    # Same key: bitwise the same result. Different key: different.
    state1b, m1b = update(state0, batch, k1)
    assert _trees_equal(state1b, state1)
    assert all(np.array_equal(m1[k], m1b[k]) for k in m1)
    state1c, m1c = update(state0, batch, k2)
    assert not _trees_equal(state1c.critic_params, state1.critic_params)
    assert not _trees_equal(state1c.policy_params, state1.policy_params)
    assert float(m1c["critic_loss"]) != float(m1["critic_loss"])
    assert float(m1c["advantage_mean"]) != float(m1["advantage_mean"])

    # act: deterministic, in range.
    actions = jax.jit(agent.act)(state1.policy_params, batch.observations)
    chex.assert_shape(actions, (BATCH, ACT_DIM))
    assert np.all(np.abs(actions) <= 1.0)


def _critic_reference(agent, state, batch, critic_key):
    """The critic half of an update rebuilt from the networks: a' ~ pi(.|s')
    from the pre-update policy, the numpy critic target, and the gradient of
    the summed per-member mean loss by plain autodiff (target constant)."""
    cfg = agent.config
    next_dist = _apply(agent.policy, state.policy_params, batch.next_observations)
    next_actions = _sample(next_dist, critic_key, None)
    chex.assert_shape(next_actions, (BATCH, ACT_DIM))
    online_next = _apply(agent.critic, state.critic_params, batch.next_observations, next_actions)
    target_next = _apply(agent.critic, state.critic_target_params, batch.next_observations, next_actions)
    chex.assert_shape([online_next, target_next], (cfg.num_critics, BATCH, cfg.num_quantiles))
    target = _critic_target_ref(online_next, target_next, batch.rewards, batch.terminals, cfg.discount)
    pred = _apply(agent.critic, state.critic_params, batch.observations, batch.actions)
    grads = _critic_ref_grads(
        agent.critic, state.critic_params, batch.observations, batch.actions, jnp.asarray(target, jnp.float32)
    )
    return target, pred, grads


def test_critic_loss_gradient_and_step_match_reference():
    """a' ~ pi(.|s') uses the first half of split(key); the loss is the sum
    over members of the batch-mean QR-Huber loss against one shared target."""
    agent, update = _agent()
    cfg = agent.config
    state0 = agent.init(jax.random.PRNGKey(10))
    batch = _transitions(11, BATCH)
    # Second state: target != online, optimiser not fresh.
    state1, _ = update(state0, _transitions(12, BATCH), jax.random.PRNGKey(13))
    key = jax.random.PRNGKey(14)
    critic_key, _ = jax.random.split(key)

    for state in (state0, state1):
        new_state, metrics = update(state, batch, key)
        target, pred, grads = _critic_reference(agent, state, batch, critic_key)
        per_row = np.stack([_quantile_huber_ref(pred[m], target) for m in range(cfg.num_critics)])
        q_data = _q_min_ref(pred)
        np.testing.assert_allclose(metrics["critic_loss"], np.sum(np.mean(per_row, axis=1)), rtol=1e-5)
        np.testing.assert_allclose(metrics["q_data_mean"], np.mean(q_data), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(metrics["q_data_max"], np.max(q_data), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(metrics["target_return_mean"], np.mean(_h_inv_np(target)), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(metrics["critic_grad_norm"], _global_norm(grads), rtol=1e-4)
        if state is state0:
            # Fresh optimiser: the critic step is Adam's first step, no weight decay.
            expected = _adam_first_step(state.critic_params, grads, cfg.critic_lr)
            _assert_trees_close(new_state.critic_params, expected, rtol=0, atol=1e-3 * cfg.critic_lr)


@pytest.mark.parametrize("case", ["plain", "clipping", "bc", "grouped", "h_space"])
def test_policy_loss_gradient_and_step_match_reference(case):
    """Rebuilds the policy half of an update: the baseline samples K actions
    from the PRE-update policy with the second half of split(key), the critic
    is the PRE-update one, weights are clamped exp(A / alpha) and constant.

    plain: alpha = 1 at initialisation, no weight clamped.
    clipping: every critic parameter scaled by 3 (outputs ~27x), so that
        advantages of many units clamp part of the batch (weight_clip_fraction
        strictly between 0 and 1).
    bc: alpha = 1e9 makes every weight exactly 1, so the policy step is
        behaviour cloning: the loss is -mean log pi(a|s) and the step is
        Adam's on the BC gradient.
    grouped: the baseline's critic calls take 2 samples each
        (advantage_samples_per_call, a speed knob): the same baseline.
    h_space: advantage_space="h" with the critic scaled as in clipping: the
        advantage is taken on the mean h-space quantile (before h^-1).
    """
    overrides = {"bc": {"alpha": 1e9}, "grouped": {"advantage_samples_per_call": 2},
                 "h_space": {"advantage_space": "h"}}
    agent, update = _agent(**overrides.get(case, {}))
    cfg = agent.config
    alpha = cfg.alpha
    state0 = agent.init(jax.random.PRNGKey(20))
    if case in ("clipping", "h_space"):
        scaled = jax.tree.map(lambda x: 3.0 * x, state0.critic_params)
        state0 = state0.replace(critic_params=scaled, critic_target_params=scaled)
    batch = _transitions(21, BATCH)
    key = jax.random.PRNGKey(22)
    _, policy_key = jax.random.split(key)
    new_state, metrics = update(state0, batch, key)

    obs = batch.observations
    dist = _apply(agent.policy, state0.policy_params, obs)
    sampled = _sample(dist, policy_key, cfg.num_advantage_samples)
    chex.assert_shape(sampled, (cfg.num_advantage_samples, BATCH, ACT_DIM))
    obs_k = jnp.broadcast_to(obs, (cfg.num_advantage_samples,) + obs.shape)
    z_pi = _apply(agent.critic, state0.critic_params, obs_k, sampled)
    z_data = _apply(agent.critic, state0.critic_params, obs, batch.actions)
    q_pi = _q_min_ref(z_pi)  # [K, B]
    chex.assert_shape(q_pi, (cfg.num_advantage_samples, BATCH))
    q_data = _q_min_ref(z_data)
    adv_return = q_data - np.mean(q_pi, axis=0)
    adv_h = _q_min_h_ref(z_data) - np.mean(_q_min_h_ref(z_pi), axis=0)
    advantages = adv_h if case == "h_space" else adv_return
    weights = np.minimum(np.exp(advantages / alpha), cfg.max_weight).astype(np.float32)
    # Both spaces' instruments, whichever drives the step.
    for space, adv in (("return", adv_return), ("h", adv_h)):
        w = np.minimum(np.exp(adv / alpha), cfg.max_weight)
        np.testing.assert_allclose(metrics[f"advantage_std_{space}"], np.std(adv), rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(metrics[f"weight_ess_{space}"], _ess_ref(w), rtol=1e-4)
    np.testing.assert_allclose(metrics["weight_ess"], _ess_ref(weights), rtol=1e-4)
    np.testing.assert_allclose([metrics["weight_q05"], metrics["weight_q50"], metrics["weight_q95"]],
                               np.quantile(weights, [0.05, 0.5, 0.95]), rtol=1e-4)
    log_probs = np.asarray(_log_prob(dist, batch.actions), np.float64)
    loss = -np.mean(log_probs * weights)

    np.testing.assert_allclose(metrics["advantage_mean"], np.mean(advantages), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(metrics["advantage_std"], np.std(advantages), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(metrics["log_prob_mean"], np.mean(log_probs), rtol=1e-5)
    np.testing.assert_allclose(metrics["weight_mean"], np.mean(weights), rtol=1e-4)
    np.testing.assert_allclose(metrics["policy_loss"], loss, rtol=1e-4)
    # The clamp decision must not sit on a float32 knife edge for the check below.
    margin = np.abs(advantages / alpha - np.log(cfg.max_weight))
    assert np.min(margin) > 1e-3
    np.testing.assert_allclose(
        metrics["weight_clip_fraction"], np.mean(advantages / alpha > np.log(cfg.max_weight)), atol=1e-7
    )

    # The baseline really is the key's samples: with the other half of the
    # split the advantages differ resolvably.
    other = _sample(dist, jax.random.split(key)[0], cfg.num_advantage_samples)
    q_other = _q_min_ref(_apply(agent.critic, state0.critic_params, obs_k, other))
    assert abs(np.mean(q_data - np.mean(q_other, axis=0)) - np.mean(advantages)) > 1e-3

    if case in ("plain", "grouped"):
        assert float(metrics["weight_clip_fraction"]) == 0.0
        assert np.std(weights) > 1e-3  # weights are not trivially constant
    elif case == "h_space":
        # The step used the h-space advantages, resolvably not the return-space ones.
        assert np.max(np.abs(adv_h - adv_return)) > 1e-2
        assert np.std(weights) > 1e-4
    elif case == "clipping":
        assert 0.0 < float(metrics["weight_clip_fraction"]) < 1.0
        assert np.sum((weights > 1e-3) & (weights < cfg.max_weight * 0.99)) >= 1  # some unclamped, non-zero
    else:
        np.testing.assert_array_equal(weights, 1.0)
        assert float(metrics["weight_mean"]) == 1.0
        assert float(metrics["weight_clip_fraction"]) == 0.0
        np.testing.assert_allclose(metrics["policy_loss"], -metrics["log_prob_mean"], rtol=1e-6)

    # Gradient of the reference loss (weights constant), and Adam's first step
    # with coupled L2 weight decay on it.
    grads = _policy_ref_grads(agent.policy, state0.policy_params, obs, batch.actions, jnp.asarray(weights))
    np.testing.assert_allclose(metrics["policy_grad_norm"], _global_norm(grads), rtol=1e-4)
    expected = _adam_first_step(state0.policy_params, grads, cfg.policy_lr, cfg.policy_weight_decay)
    _assert_trees_close(new_state.policy_params, expected, rtol=0, atol=1e-3 * cfg.policy_lr)
    # Decoupled (AdamW-style) or no decay would be a different step somewhere.
    no_decay = _adam_first_step(state0.policy_params, grads, cfg.policy_lr, 0.0)
    assert not all(
        np.allclose(a, b, rtol=0, atol=1e-3 * cfg.policy_lr)
        for a, b in zip(jax.tree.leaves(new_state.policy_params), jax.tree.leaves(no_decay))
    )


# --------------------------------------------------------------------------
# make_train_steps
# --------------------------------------------------------------------------


def test_train_steps_match_python_loop():
    agent, update = _agent()
    num_steps, batch_size = 3, BATCH  # BATCH: reuses the compiled update
    dataset = _transitions(30, 200)
    state0 = agent.init(jax.random.PRNGKey(31))
    key = jax.random.PRNGKey(32)

    train_steps = make_train_steps(agent.update, batch_size, num_steps)
    state, metrics = train_steps(state0, dataset, key)

    loop_state, loop_metrics = state0, []
    for step_key in jax.random.split(key, num_steps):
        batch_key, update_key = jax.random.split(step_key)
        batch = sample_batch(dataset, batch_key, batch_size)
        chex.assert_shape(batch.observations, (batch_size, OBS_DIM))
        loop_state, m = update(loop_state, batch, update_key)
        loop_metrics.append(m)

    assert int(state.step) == num_steps
    _assert_trees_close(state, loop_state, rtol=1e-5, atol=1e-6)
    assert set(metrics) == METRIC_KEYS
    for name in METRIC_KEYS:
        chex.assert_shape(metrics[name], ())
        per_step = np.array([float(m[name]) for m in loop_metrics])
        # Peaks stay peaks over a chunk (the divergence guard reads them).
        expected = np.max(per_step) if name.endswith("_max") else np.mean(per_step)
        np.testing.assert_allclose(metrics[name], expected, rtol=1e-5, atol=1e-6, err_msg=name)
    per_step = np.array([float(m["q_data_max"]) for m in loop_metrics])
    assert per_step.max() - per_step.mean() > 1e-4  # the max differs from the mean here
    # A chunk mean, not the last step's value.
    per_step = np.array([float(m["critic_loss"]) for m in loop_metrics])
    assert abs(per_step[-1] - per_step.mean()) > 1e-4

    # Different key, different batches and result.
    other, _ = train_steps(state0, dataset, jax.random.PRNGKey(33))
    assert not _trees_equal(other.critic_params, state.critic_params)


# --------------------------------------------------------------------------
# target_selection, log_std_max and q (named deviations and instruments)
# --------------------------------------------------------------------------


@pytest.mark.parametrize("members", [2, 3])
def test_critic_target_target_min_matches_numpy_reference(members):
    """``selection="target_min"``: per sample, the member whose TARGET mean
    return is lowest is bootstrapped (TD3); the default stays online_min."""
    batch, n, discount = 64, 16, 0.97
    rng = np.random.default_rng(100 + members)
    online = jnp.asarray(3.0 * rng.normal(size=(members, batch, n)), jnp.float32)
    target = jnp.asarray(3.0 * rng.normal(size=(members, batch, n)), jnp.float32)
    rewards = jnp.asarray(2.0 * rng.normal(size=batch), jnp.float32)
    terminals = jnp.asarray(rng.uniform(size=batch) < 0.3, jnp.float32)

    out = critic_target(online, target, rewards, terminals, discount, EPS, selection="target_min")
    chex.assert_shape(out, (batch, n))
    chex.assert_type(out, jnp.float32)
    expected = _critic_target_ref(online, target, rewards, terminals, discount, select_with="target")
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)

    # The default is online_min, bit for bit the explicit one.
    default = critic_target(online, target, rewards, terminals, discount, EPS)
    online_min = critic_target(online, target, rewards, terminals, discount, EPS, selection="online_min")
    np.testing.assert_array_equal(default, online_min)
    np.testing.assert_allclose(
        online_min, _critic_target_ref(online, target, rewards, terminals, discount), rtol=1e-5, atol=1e-5)

    # Where the online and target critics disagree on the lower member (and
    # the sample bootstraps) the two selections differ resolvably; elsewhere
    # they agree.
    term = np.asarray(terminals, bool)
    q_online = np.mean(_h_inv_np(online), -1).argmin(0)
    q_target = np.mean(_h_inv_np(target), -1).argmin(0)
    disagree = (q_online != q_target) & ~term
    assert disagree.sum() >= 5
    gap = np.max(np.abs(np.asarray(out) - np.asarray(online_min)), axis=-1)
    assert np.all(gap[disagree] > 1e-2)
    np.testing.assert_array_equal(np.asarray(out)[~disagree], np.asarray(online_min)[~disagree])
    # The selected member's target mean return is the minimum over members.
    chosen_return = np.mean(_h_inv_np(out[~term]), axis=-1)
    lowest = np.min(np.mean(_h_inv_np(target), -1), axis=0)[~term]
    np.testing.assert_allclose(
        chosen_return, np.asarray(rewards)[~term] + discount * lowest, rtol=1e-4, atol=1e-4)


def test_critic_target_target_min_hand_built():
    """The hand-built samples of the online_min test, selected by the target
    critics: sample 0 -> member 1, sample 1 -> member 0, sample 2 -> member 1
    (target member 1 = [-1, 0, 1, 2] is lower than [1, 2, 3, 4])."""
    online = jnp.array(
        [
            [[-1.0, 0.0, 0.5, 1.0], [2.0, 2.5, 3.0, 3.5], [0.0, 0.0, 0.0, 10.0]],
            [[1.0, 1.5, 2.0, 2.5], [-2.0, -1.0, 0.0, 1.0], [3.0, 3.0, 3.0, 3.0]],
        ]
    )
    target = jnp.array(
        [
            [[4.0, 5.0, 6.0, 7.0], [-3.0, -2.0, -1.0, 0.0], [1.0, 2.0, 3.0, 4.0]],
            [[-4.0, -3.0, -2.0, -1.0], [5.0, 6.0, 7.0, 8.0], [-1.0, 0.0, 1.0, 2.0]],
        ]
    )
    rewards = jnp.array([1.0, -0.5, 2.0])
    terminals = jnp.array([0.0, 0.0, 0.0])
    discount = 0.9
    out = critic_target(online, target, rewards, terminals, discount, EPS, selection="target_min")
    online_out = critic_target(online, target, rewards, terminals, discount, EPS, selection="online_min")
    chex.assert_equal_shape([out, online_out])
    for b, (m, m_online) in enumerate(zip([1, 0, 1], [0, 1, 1])):
        expected = _h_np(float(rewards[b]) + discount * _h_inv_np(target[m, b]))
        np.testing.assert_allclose(out[b], expected, rtol=1e-5, atol=1e-6)
        expected_online = _h_np(float(rewards[b]) + discount * _h_inv_np(target[m_online, b]))
        np.testing.assert_allclose(online_out[b], expected_online, rtol=1e-5, atol=1e-6)
    # Samples 0 and 1: the selections differ; sample 2: both pick member 1.
    assert np.max(np.abs(np.asarray(out[:2]) - np.asarray(online_out[:2]))) > 1.0
    np.testing.assert_array_equal(out[2], online_out[2])
    # A terminal still cuts the bootstrap.
    out_term = critic_target(online, target, rewards, jnp.array([1.0, 0.0, 0.0]), discount, EPS,
                             selection="target_min")
    np.testing.assert_allclose(out_term[0], np.full(4, _h_np(1.0)), rtol=1e-6)


def _reverse_members(params):
    """The critic ensemble with its members' order reversed (leading axis)."""
    return jax.tree.map(lambda x: x[::-1], params)


@pytest.mark.parametrize("selection", ["online_min", "target_min"])
def test_update_bootstraps_with_the_configured_selection(selection):
    """AWACConfig.target_selection reaches the update: its critic loss and
    target return match the numpy reference with that selection, and not the
    other one. The target critics are the online ones with the members swapped,
    so the two selections pick opposite members wherever the members differ."""
    # The default agent (compiled once for the file) is online_min.
    agent, update = _agent() if selection == "online_min" else _agent(target_selection=selection)
    assert agent.config.target_selection == selection
    cfg = agent.config
    state = agent.init(jax.random.PRNGKey(40))
    state = state.replace(critic_target_params=_reverse_members(state.critic_params))
    batch = _transitions(41, BATCH)
    key = jax.random.PRNGKey(42)
    critic_key, _ = jax.random.split(key)
    _, metrics = update(state, batch, key)

    next_actions = _sample(_apply(agent.policy, state.policy_params, batch.next_observations), critic_key, None)
    online_next = _apply(agent.critic, state.critic_params, batch.next_observations, next_actions)
    target_next = _apply(agent.critic, state.critic_target_params, batch.next_observations, next_actions)
    pred = _apply(agent.critic, state.critic_params, batch.observations, batch.actions)

    def loss_and_return(select_with):
        target = _critic_target_ref(online_next, target_next, batch.rewards, batch.terminals,
                                    cfg.discount, select_with=select_with)
        per_row = np.stack([_quantile_huber_ref(pred[m], target) for m in range(cfg.num_critics)])
        return np.sum(np.mean(per_row, axis=1)), np.mean(_h_inv_np(target))

    mine, other = ("online", "target") if selection == "online_min" else ("target", "online")
    loss, target_return = loss_and_return(mine)
    np.testing.assert_allclose(metrics["critic_loss"], loss, rtol=1e-5)
    np.testing.assert_allclose(metrics["target_return_mean"], target_return, rtol=1e-5, atol=1e-6)
    other_loss, other_return = loss_and_return(other)
    assert abs(other_return - target_return) > 1e-3 and abs(other_loss - loss) > 1e-3 * loss


def test_awac_config_validates_target_selection_and_reads_new_fields():
    with pytest.raises(ValueError, match=r"awac\.target_selection='bad'.*online_min.*target_min"):
        AWACConfig(target_selection="bad")
    with pytest.raises(ValueError, match=r"awac\.target_selection"):
        AWACConfig.from_dict({"target_selection": "min"})
    assert AWACConfig().target_selection == "online_min" and AWACConfig().log_std_max == 2.0
    config = AWACConfig.from_dict({"target_selection": "target_min", "log_std_max": 0.0, "num_steps": 5})
    assert (config.target_selection, config.log_std_max) == ("target_min", 0.0)
    # num_steps is a run field the launcher reads; anything else is a typo.
    with pytest.raises(ValueError, match=r"awac: unknown key\(s\) \['log_std_mx'\].*log_std_max"):
        AWACConfig.from_dict({"log_std_mx": 0.0})
    with pytest.raises(ValueError, match=r"advantage_samples_per_call=3: .*divide.*=10"):
        AWACConfig(advantage_samples_per_call=3)
    assert AWACConfig(advantage_samples_per_call=5).advantage_samples_per_call == 5


def test_log_std_max_reaches_the_policy():
    """The config's bound is the policy network's; with log_std_max = 0 every
    component std is <= 1 where the default bound (2) lets them reach e^2."""
    wide, _ = _agent()
    narrow, _ = _agent(log_std_max=0.0)
    assert wide.policy.log_std_max == 2.0 and narrow.policy.log_std_max == 0.0
    state = wide.init(jax.random.PRNGKey(50))
    # Large raw outputs: log-stds far beyond both bounds, on both sides.
    params = jax.tree.map(lambda x: 4.0 * x, state.policy_params)
    obs = jnp.asarray(3.0 * np.random.default_rng(51).normal(size=(BATCH, OBS_DIM)), jnp.float32)
    stds_wide = np.asarray(_apply(wide.policy, params, obs).stds)
    stds_narrow = np.asarray(_apply(narrow.policy, params, obs).stds)
    chex.assert_shape([stds_wide, stds_narrow], (BATCH, TINY["num_components"], ACT_DIM))
    assert np.all(stds_narrow <= 1.0) and np.any(stds_narrow == 1.0)
    assert np.max(stds_wide) == pytest.approx(np.exp(2.0), rel=1e-6)
    # Below both bounds the two policies agree; the bound alone differs.
    below = stds_wide < 1.0
    assert below.any() and (~below).any()
    np.testing.assert_array_equal(stds_narrow[below], stds_wide[below])
    np.testing.assert_array_equal(stds_narrow[~below], 1.0)


def test_q_is_min_over_members_of_mean_return():
    agent, _ = _agent()
    state = agent.init(jax.random.PRNGKey(60))
    batch = _transitions(61, BATCH)
    q = jax.jit(agent.q)(state.critic_params, batch.observations, batch.actions)
    chex.assert_shape(q, (BATCH,))
    chex.assert_type(q, jnp.float32)
    quantiles = _apply(agent.critic, state.critic_params, batch.observations, batch.actions)
    chex.assert_shape(quantiles, (agent.config.num_critics, BATCH, agent.config.num_quantiles))
    np.testing.assert_allclose(q, jnp.min(q_values(quantiles, EPS), axis=0), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(q, _q_min_ref(quantiles), rtol=1e-5, atol=1e-5)
    # Both members are the minimum somewhere (so a single member would fail),
    # and q is the critic's, not the target's.
    picks = np.argmin(np.asarray(q_values(quantiles, EPS)), axis=0)
    assert 0 < picks.mean() < 1
    shifted = jax.tree.map(lambda x: x + 0.1, state.critic_params)
    assert np.max(np.abs(np.asarray(agent.q(shifted, batch.observations, batch.actions)) - np.asarray(q))) > 1e-3


def test_config_refuses_unknown_advantage_space_and_critic_norm():
    with pytest.raises(ValueError, match=r"awac.advantage_space='q'.*\['return', 'h'\]"):
        AWACConfig(advantage_space="q")
    with pytest.raises(ValueError, match=r"awac.critic_norm='batchnorm'.*layernorm"):
        AWACConfig(critic_norm="batchnorm")


def test_critic_layer_norm_normalises_every_hidden_layer_and_trains():
    """critic_norm='layernorm': each hidden layer of each member has a
    LayerNorm (scale and bias per member), the policy has none, and an update
    moves the LayerNorm parameters."""
    agent, update = _agent(critic_norm="layernorm")
    state0 = agent.init(jax.random.PRNGKey(30))
    members = state0.critic_params["params"]["VmapQuantileCritic_0"]["MLP_0"]
    norms = sorted(name for name in members if name.startswith("LayerNorm"))
    assert norms == ["LayerNorm_0", "LayerNorm_1"]
    chex.assert_shape(members["LayerNorm_0"]["scale"], (2, 32))
    assert not any("LayerNorm" in str(path) for path, _ in
                   jax.tree_util.tree_flatten_with_path(state0.policy_params)[0])
    # LayerNorm makes the hidden features invariant to a scale of the inputs'
    # first layer output: scaling Dense_0's kernel and bias leaves Q unchanged.
    obs, act = jnp.ones((4, OBS_DIM)), jnp.ones((4, ACT_DIM))
    scaled = jax.tree_util.tree_map_with_path(
        lambda path, x: 5.0 * x if "Dense_0" in str(path) else x, state0.critic_params)
    np.testing.assert_allclose(agent.critic.apply(scaled, obs, act),
                               agent.critic.apply(state0.critic_params, obs, act), rtol=1e-4, atol=1e-5)
    state1, metrics = update(state0, _transitions(31, BATCH), jax.random.PRNGKey(32))
    assert np.isfinite(float(metrics["critic_loss"]))
    moved = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))),
                         state1.critic_params["params"]["VmapQuantileCritic_0"]["MLP_0"]["LayerNorm_0"],
                         members["LayerNorm_0"])
    assert min(jax.tree.leaves(moved)) > 0.0


def test_awr_weights_are_the_policy_steps_weights_of_given_rows():
    """agent.awr_weights (the fine-tuning instrument for dataset vs model rows)
    computes exactly the configured space's clamped weights of the rows it is
    given, with a baseline of num_advantage_samples policy samples."""
    for space in ("return", "h"):
        agent, _ = _agent(advantage_space=space)
        cfg = agent.config
        state = agent.init(jax.random.PRNGKey(40))
        scaled = jax.tree.map(lambda x: 3.0 * x, state.critic_params)
        state = state.replace(critic_params=scaled)
        batch = _transitions(41, BATCH)
        key = jax.random.PRNGKey(42)
        got = jax.jit(agent.awr_weights)(state, batch.observations, batch.actions, key)
        dist = _apply(agent.policy, state.policy_params, batch.observations)
        sampled = _sample(dist, key, cfg.num_advantage_samples)
        obs_k = jnp.broadcast_to(batch.observations, (cfg.num_advantage_samples,) + batch.observations.shape)
        ref = _q_min_ref if space == "return" else _q_min_h_ref
        adv = (ref(_apply(agent.critic, scaled, batch.observations, batch.actions))
               - np.mean(ref(_apply(agent.critic, scaled, obs_k, sampled)), axis=0))
        np.testing.assert_allclose(got, np.minimum(np.exp(adv / cfg.alpha), cfg.max_weight),
                                   rtol=1e-4, atol=1e-6)
