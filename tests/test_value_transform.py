"""Pohlen's transform: exact inverse, monotone, odd, and its known values."""

import jax.numpy as jnp
import numpy as np

from mb2po_jax.value_transform import h, h_inv


def test_round_trip_both_ways():
    x = jnp.concatenate([-jnp.logspace(-4, 4, 200), jnp.zeros(1), jnp.logspace(-4, 4, 200)])
    np.testing.assert_allclose(h(h_inv(x)), x, rtol=1e-5, atol=0)
    np.testing.assert_allclose(h_inv(h(x)), x, rtol=1e-5, atol=0)


def test_strictly_increasing_and_odd():
    x = jnp.linspace(-5000, 5000, 100001)
    assert jnp.all(jnp.diff(h(x)) > 0)
    assert jnp.all(jnp.diff(h_inv(h(x))) > 0)
    np.testing.assert_allclose(h(-x), -h(x), rtol=1e-6)


def test_known_values():
    # h(3) = sqrt(4) - 1 + 0.03 = 1.03; h(0) = 0.
    np.testing.assert_allclose(h(jnp.float32(3.0)), 1.03, rtol=1e-6)
    assert float(h(jnp.float32(0.0))) == 0.0
    np.testing.assert_allclose(h_inv(jnp.float32(1.03)), 3.0, rtol=1e-5)


def test_matches_textbook_formulas_in_float64():
    eps = 1e-2
    x = np.concatenate([-np.logspace(-2, 4, 50), np.logspace(-2, 4, 50)])
    textbook_h = np.sign(x) * (np.sqrt(np.abs(x) + 1) - 1) + eps * x
    root = (np.sqrt(1 + 4 * eps * (np.abs(x) + 1 + eps)) - 1) / (2 * eps)
    textbook_h_inv = np.sign(x) * (root**2 - 1)
    np.testing.assert_allclose(h(jnp.asarray(x, jnp.float32)), textbook_h, rtol=1e-5)
    np.testing.assert_allclose(h_inv(jnp.asarray(x, jnp.float32)), textbook_h_inv, rtol=1e-5)
