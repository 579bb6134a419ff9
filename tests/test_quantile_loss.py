"""Quantile-Huber loss: a hand-worked example, autodiff agreement, chunking."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mb2po_jax.quantile_loss import quantile_huber_loss, quantile_midpoints


def test_midpoints():
    np.testing.assert_allclose(quantile_midpoints(4), [0.125, 0.375, 0.625, 0.875])


def test_hand_worked_example():
    # N = 2 predicted quantiles (tau = 0.25, 0.75), M = 2 targets, kappa = 1.
    # p = [0, 1], t = [0.5, 3]:
    #  i=1 (tau .25): u = [0.5, 3] >= 0, weight .25; H = [.125, 2.5]
    #        -> .25 * (.125 + 2.5) / 2 = 0.328125
    #  i=2 (tau .75): u = [-.5, 2]; weights [.25, .75]; H = [.125, 1.5]
    #        -> (.25 * .125 + .75 * 1.5) / 2 = 0.578125
    # dL/dp_1 = -(.25 * .5 + .25 * 1) / 2 = -0.1875
    # dL/dp_2 = -(.25 * -.5 + .75 * 1) / 2 = -0.3125
    pred = jnp.array([[0.0, 1.0]])
    target = jnp.array([[0.5, 3.0]])
    loss, grad = jax.value_and_grad(lambda p: quantile_huber_loss(p, target, 1.0)[0])(pred)
    np.testing.assert_allclose(loss, 0.90625, rtol=1e-6)
    np.testing.assert_allclose(grad, [[-0.1875, -0.3125]], rtol=1e-6)


def _naive(pred, target, kappa):
    taus = quantile_midpoints(pred.shape[-1])
    u = target[:, None, :] - pred[:, :, None]
    weight = jnp.abs(taus[None, :, None] - (u < 0))
    huber = jnp.where(jnp.abs(u) <= kappa, 0.5 * u**2, kappa * (jnp.abs(u) - 0.5 * kappa))
    return jnp.sum(jnp.mean(weight * huber, -1), -1) / kappa


@pytest.mark.parametrize("kappa", [1.0, 0.3])
@pytest.mark.parametrize("chunk", [None, 8, 7])
def test_matches_autodiff_of_naive_loss(kappa, chunk):
    kp, kt, kw = jax.random.split(jax.random.PRNGKey(0), 3)
    pred = 2 * jax.random.normal(kp, (32, 10))
    target = 2 * jax.random.normal(kt, (32, 13))
    row_weights = jax.random.uniform(kw, (32,))

    def ours(p):
        return jnp.sum(row_weights * quantile_huber_loss(p, target, kappa, chunk))

    def ref(p):
        return jnp.sum(row_weights * _naive(p, target, kappa))

    np.testing.assert_allclose(ours(pred), ref(pred), rtol=1e-5)
    np.testing.assert_allclose(jax.grad(ours)(pred), jax.grad(ref)(pred), rtol=1e-5, atol=1e-7)


def test_target_gets_no_gradient():
    pred = jnp.zeros((4, 3))
    target = jnp.ones((4, 5))
    g = jax.grad(lambda t: quantile_huber_loss(pred, t).sum())(target)
    np.testing.assert_array_equal(g, 0.0)


def test_minimiser_is_the_quantiles():
    # With many targets from a known distribution, gradient descent on the
    # predicted quantiles converges to the distribution's quantiles at the
    # midpoints (the defining property of quantile regression).
    n = 5
    target = jnp.sort(jax.random.uniform(jax.random.PRNGKey(1), (1, 4000)))  # U(0, 1)
    pred = jnp.zeros((1, n))
    grad_fn = jax.jit(jax.grad(lambda p: quantile_huber_loss(p, target, 0.01).sum()))
    for _ in range(3000):
        pred = pred - 0.05 * grad_fn(pred)
    np.testing.assert_allclose(pred[0], quantile_midpoints(n), atol=0.03)
