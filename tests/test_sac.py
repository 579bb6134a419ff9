"""SAC: one update against the textbook losses (Haarnoja et al. 2018b) rebuilt
here from the networks, their gradients and the first Adam step; the tanh
log-density against distrax and float64 numpy; bootstrapping through
truncations only; and the scanned ``make_train_steps`` against a Python loop
that samples only the filled part of the buffer.

Networks are tiny (2 x 16) so the file runs in seconds.
"""

from __future__ import annotations

import distrax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mb2po_jax.agents import sac
from mb2po_jax.transitions import Transitions, sample_prefix

OBS_DIM, ACT_DIM, BATCH = 4, 2, 16
# tau large so a wrong soft-update rate shows far above float32 noise.
TINY = sac.SACConfig(hidden_dims=(16, 16), tau=0.1, init_temperature=0.5)


@pytest.fixture(scope="module")
def agent() -> sac.SAC:
    return sac.make_sac(OBS_DIM, ACT_DIM, TINY)


@pytest.fixture(scope="module")
def init_state(agent) -> sac.SACState:
    return jax.jit(agent.init)(jax.random.PRNGKey(0))


@pytest.fixture(scope="module")
def update(agent):
    # One compiled update for the module: eager op-by-op SAC takes seconds.
    return jax.jit(agent.update)


def _batch(key: jax.Array, n: int = BATCH) -> Transitions:
    keys = jax.random.split(key, 5)
    return Transitions(
        observations=jax.random.normal(keys[0], (n, OBS_DIM)),
        actions=jax.random.uniform(keys[1], (n, ACT_DIM), minval=-1, maxval=1),
        rewards=jax.random.normal(keys[2], (n,)),
        next_observations=jax.random.normal(keys[3], (n, OBS_DIM)),
        terminals=(jnp.arange(n) % 4 == 0).astype(jnp.float32),
        timeouts=(jnp.arange(n) % 4 == 1).astype(jnp.float32),
    )


def _textbook_log_prob(mean, log_std, u):
    """log N(u; mean, std) - sum log(1 - tanh(u)^2), written out naively."""
    std = jnp.exp(log_std)
    gaussian = -0.5 * ((u - mean) / std) ** 2 - jnp.log(std) - 0.5 * jnp.log(2 * jnp.pi)
    return jnp.sum(gaussian - jnp.log(1 - jnp.tanh(u) ** 2), axis=-1)


def _textbook_losses(agent, state, batch, key):
    """J_Q, J_pi, J(alpha) exactly as in the paper, sharing the update's noise."""
    gamma, alpha = agent.config.discount, jnp.exp(state.log_temperature)
    next_key, actor_key = jax.random.split(key)

    def sample(params, obs, k):
        mean, log_std = agent.actor.apply(params, obs)
        u = mean + jnp.exp(log_std) * jax.random.normal(k, mean.shape)
        return jnp.tanh(u), _textbook_log_prob(mean, log_std, u)

    def j_q(critic_params):
        a_next, logp_next = sample(state.actor_params, batch.next_observations, next_key)
        q1_t, q2_t = agent.critic.apply(state.critic_target_params, batch.next_observations, a_next)
        y = batch.rewards + gamma * (1 - batch.terminals) * (
            jnp.minimum(q1_t, q2_t) - alpha * logp_next)
        q1, q2 = agent.critic.apply(critic_params, batch.observations, batch.actions)
        y = jax.lax.stop_gradient(y)
        return 0.5 * jnp.mean((q1 - y) ** 2) + 0.5 * jnp.mean((q2 - y) ** 2)

    def j_pi(actor_params):
        a, logp = sample(actor_params, batch.observations, actor_key)
        q1, q2 = agent.critic.apply(state.critic_params, batch.observations, a)
        return jnp.mean(alpha * logp - jnp.minimum(q1, q2))

    def j_alpha(log_alpha):
        _, logp = sample(state.actor_params, batch.observations, actor_key)
        return jnp.mean(-jnp.exp(log_alpha) * (logp + agent.target_entropy))

    return j_q, j_pi, j_alpha


def _first_adam_step(params, grads, lr, eps=1e-8):
    """Adam's first step is -lr * g / (|g| + eps) (bias corrections cancel)."""
    return jax.tree.map(lambda p, g: p - lr * g / (jnp.abs(g) + eps), params, grads)


def _assert_close(a, b, atol):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=atol, rtol=1e-4)


def test_update_matches_textbook_losses_gradients_and_adam_step(agent, update, init_state) -> None:
    state = init_state
    # A trained-looking target net, so target != online matters.
    state = state.replace(critic_target_params=jax.tree.map(
        lambda x: x * 0.9 + 0.01, state.critic_params))
    batch, key = _batch(jax.random.PRNGKey(1)), jax.random.PRNGKey(2)
    new_state, metrics = update(state, batch, key)

    j_q, j_pi, j_alpha = _textbook_losses(agent, state, batch, key)
    (loss_q, grad_q), (loss_pi, grad_pi), (loss_alpha, grad_alpha) = jax.jit(
        lambda s: (jax.value_and_grad(j_q)(s.critic_params),
                   jax.value_and_grad(j_pi)(s.actor_params),
                   jax.value_and_grad(j_alpha)(s.log_temperature)))(state)
    np.testing.assert_allclose(metrics["critic_loss"], loss_q, rtol=1e-5)
    np.testing.assert_allclose(metrics["actor_loss"], loss_pi, rtol=1e-5)
    np.testing.assert_allclose(metrics["temperature_loss"], loss_alpha, rtol=1e-5)
    np.testing.assert_allclose(metrics["temperature"], 0.5, rtol=1e-6)
    assert agent.target_entropy == -ACT_DIM

    lr = TINY.critic_lr
    expected_critic = _first_adam_step(state.critic_params, grad_q, lr)
    _assert_close(new_state.critic_params, expected_critic, atol=lr * 1e-3)
    expected_actor = _first_adam_step(state.actor_params, grad_pi, TINY.actor_lr)
    _assert_close(new_state.actor_params, expected_actor, atol=TINY.actor_lr * 1e-3)
    expected_log_alpha = state.log_temperature - TINY.temperature_lr * np.sign(grad_alpha)
    np.testing.assert_allclose(new_state.log_temperature, expected_log_alpha, atol=1e-7)
    # Polyak averaging towards the *updated* critics.
    expected_target = jax.tree.map(lambda t, c: (1 - TINY.tau) * t + TINY.tau * c,
                                   state.critic_target_params, new_state.critic_params)
    _assert_close(new_state.critic_target_params, expected_target, atol=1e-6)
    assert int(new_state.step) == 1
    for name, value in metrics.items():
        assert np.isfinite(value), name


def test_temperature_falls_when_entropy_exceeds_target(agent, update, init_state) -> None:
    state = init_state
    new_state, metrics = update(state, _batch(jax.random.PRNGKey(1)), jax.random.PRNGKey(2))
    # A fresh actor (std ~ 1) is far more random than -act_dim nats.
    assert metrics["entropy"] > agent.target_entropy
    assert new_state.log_temperature < state.log_temperature


def test_terminals_cut_the_target_and_truncations_bootstrap(agent, update, init_state) -> None:
    state = init_state
    batch, key = _batch(jax.random.PRNGKey(1)), jax.random.PRNGKey(2)
    flipped = batch.replace(timeouts=1.0 - batch.timeouts)
    _, m1 = update(state, batch, key)
    _, m2 = update(state, flipped, key)
    # Timeouts are invisible to the learner: only terminals cut the return.
    np.testing.assert_array_equal(m1["critic_loss"], m2["critic_loss"])
    all_terminal = batch.replace(terminals=jnp.ones(BATCH))
    _, m3 = update(state, all_terminal, key)
    np.testing.assert_allclose(m3["target_mean"], jnp.mean(batch.rewards), rtol=1e-6)


def test_tanh_log_prob_matches_distrax_and_is_stable() -> None:
    mean = jnp.array([[0.3, -1.0], [2.0, 0.0]])
    log_std = jnp.array([[-0.5, 0.2], [0.0, -1.0]])
    u = jnp.array([[0.1, -2.0], [1.5, 0.4]])
    reference = distrax.Transformed(
        distrax.MultivariateNormalDiag(mean, jnp.exp(log_std)), distrax.Block(distrax.Tanh(), 1)
    ).log_prob(jnp.tanh(u))
    np.testing.assert_allclose(sac.tanh_gaussian_log_prob(mean, log_std, u), reference, rtol=1e-5)
    # Far in the tail tanh(u) rounds to 1 in float32; the stable form stays
    # finite and matches float64 numpy.
    u_big = jnp.array([[12.0, -15.0]])
    got = sac.tanh_gaussian_log_prob(jnp.zeros((1, 2)), jnp.zeros((1, 2)), u_big)
    u64 = np.array([12.0, -15.0], np.float64)
    expected = np.sum(-0.5 * u64**2 - 0.5 * np.log(2 * np.pi)
                      - 2 * (np.log(2) - u64 - np.logaddexp(0, -2 * u64)))
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got[0], expected, rtol=1e-5)


def test_actions_and_log_std_bounds() -> None:
    agent = sac.make_sac(OBS_DIM, ACT_DIM, sac.SACConfig(hidden_dims=(8,), log_std_min=-3.0,
                                                         log_std_max=-2.0))
    params = jax.jit(agent.init)(jax.random.PRNGKey(0)).actor_params
    obs = 100.0 * jax.random.normal(jax.random.PRNGKey(1), (64, OBS_DIM))
    mean, log_std = jax.jit(agent.actor.apply)(params, obs)
    assert float(log_std.min()) >= -3.0 and float(log_std.max()) <= -2.0
    np.testing.assert_allclose(jax.jit(agent.act)(params, obs), jnp.tanh(mean), rtol=1e-6)
    sampled = jax.jit(agent.sample_actions)(params, obs, jax.random.PRNGKey(2))
    assert sampled.shape == (64, ACT_DIM) and float(jnp.abs(sampled).max()) <= 1.0


def test_train_steps_scan_equals_loop_and_samples_only_the_filled_rows(
        agent, update, init_state) -> None:
    state = init_state
    filled = _batch(jax.random.PRNGKey(3), 40)
    # Rows past `size` are NaN: touching any would poison the losses.
    buffer = jax.tree.map(
        lambda x: jnp.concatenate([x, jnp.full((24,) + x.shape[1:], jnp.nan)]), filled)
    size, key, steps = jnp.int32(40), jax.random.PRNGKey(4), 5
    scanned, metrics = sac.make_train_steps(agent.update, 8, steps)(state, buffer, size, key)

    looped, losses = state, []
    sample = jax.jit(lambda b, n, k: sample_prefix(b, n, k, 8))
    for step_key in jax.random.split(key, steps):
        batch_key, update_key = jax.random.split(step_key)
        looped, m = update(looped, sample(buffer, size, batch_key), update_key)
        losses.append(m["critic_loss"])
    _assert_close(scanned, looped, atol=1e-6)
    np.testing.assert_allclose(metrics["critic_loss"], np.mean(losses), rtol=1e-5)
    assert all(np.isfinite(v) for v in metrics.values())
    assert int(scanned.step) == steps


def test_config_from_dict_refuses_unknown_keys() -> None:
    with pytest.raises(ValueError, match=r"sac: unknown key\(s\) \['unrelated'\].*tau"):
        sac.SACConfig.from_dict({"hidden_dims": [32, 32], "tau": 0.01, "unrelated": 1})
    config = sac.SACConfig.from_dict({"hidden_dims": [32, 32], "tau": 0.01})
    assert config.hidden_dims == (32, 32) and config.tau == 0.01
    assert sac.SACConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError):
        sac.SACConfig.from_dict({"hidden_dims": [4, "x"]})
