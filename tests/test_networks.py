"""Networks: shapes, the GMM density against quadrature, the tanh correction
against a numerical Jacobian, and the sampler against the density."""

import chex
import distrax
import jax
import jax.numpy as jnp
import numpy as np

from mb2po_jax import networks


def _gmm_1d():
    # Five components, moderate scales so the squashed density is integrable on
    # a grid up to the boundaries of (-1, 1).
    return networks.GMMParams(
        logits=jnp.array([0.3, -1.0, 0.8, 0.0, -0.5]),
        means=jnp.array([[-1.2], [-0.2], [0.4], [0.9], [1.5]]),
        stds=jnp.array([[0.3], [0.5], [0.2], [0.7], [0.4]]),
    )


def test_critic_ensemble_shapes_and_independent_members():
    critic = networks.QuantileCriticEnsemble(num_members=2, hidden_dims=(32, 32), num_quantiles=7)
    obs, act = jnp.ones((5, 4)), jnp.ones((5, 2))
    params = critic.init(jax.random.PRNGKey(0), obs, act)
    out = critic.apply(params, obs, act)
    chex.assert_shape(out, (2, 5, 7))
    leaves = jax.tree.leaves(params)
    assert all(leaf.shape[0] == 2 for leaf in leaves)
    assert not np.allclose(out[0], out[1])  # members initialised independently
    # Extra leading dims pass through.
    chex.assert_shape(critic.apply(params, jnp.ones((3, 5, 4)), jnp.ones((3, 5, 2))), (2, 3, 5, 7))


def test_policy_output_shapes_and_std_bounds():
    policy = networks.TanhGMMPolicy(action_dim=3, hidden_dims=(16,), num_components=5)
    obs = 100.0 * jax.random.normal(jax.random.PRNGKey(0), (8, 6))
    params = policy.init(jax.random.PRNGKey(1), obs)
    out = policy.apply(params, obs)
    chex.assert_shape(out.logits, (8, 5))
    chex.assert_shape([out.means, out.stds], (8, 5, 3))
    assert jnp.all(out.stds >= jnp.exp(-5.0) - 1e-7) and jnp.all(out.stds <= jnp.exp(2.0) + 1e-5)
    a = networks.sample(out, jax.random.PRNGKey(2), 4)
    chex.assert_shape(a, (4, 8, 3))
    assert jnp.all(jnp.abs(a) <= 1.0)
    chex.assert_shape(networks.log_prob(out, a), (4, 8))
    chex.assert_shape(networks.deterministic_action(out), (8, 3))


def test_density_integrates_to_one():
    params = _gmm_1d()
    y = np.linspace(-1 + 1e-7, 1 - 1e-7, 400001)
    density = np.exp(np.asarray(networks.log_prob(params, jnp.asarray(y[:, None], jnp.float32)), np.float64))
    assert abs(np.trapezoid(density, y) - 1.0) < 2e-3


def test_tanh_correction_matches_numerical_jacobian():
    params = _gmm_1d()
    base = distrax.MixtureSameFamily(
        distrax.Categorical(logits=params.logits),
        distrax.MultivariateNormalDiag(params.means, params.stds),
    )
    x = np.linspace(-2.5, 2.5, 41)
    y = np.tanh(x)
    h = 1e-5
    jacobian = (np.tanh(x + h) - np.tanh(x - h)) / (2 * h)  # float64 central difference
    expected = np.asarray(base.log_prob(jnp.asarray(x[:, None], jnp.float32))) - np.log(jacobian)
    got = np.asarray(networks.log_prob(params, jnp.asarray(y[:, None], jnp.float32)))
    np.testing.assert_allclose(got, expected, atol=2e-3)


def test_log_prob_is_finite_on_the_boundary():
    params = _gmm_1d()
    lp = networks.log_prob(params, jnp.array([[-1.0], [1.0]]))
    assert jnp.all(jnp.isfinite(lp))


def test_sampler_matches_density():
    # Empirical CDF of 200k samples vs the CDF integrated from log_prob.
    params = _gmm_1d()
    samples = np.sort(np.asarray(networks.sample(params, jax.random.PRNGKey(0), 200_000))[:, 0])
    y = np.linspace(-1 + 1e-7, 1 - 1e-7, 200001)
    density = np.exp(np.asarray(networks.log_prob(params, jnp.asarray(y[:, None], jnp.float32)), np.float64))
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (density[1:] + density[:-1]) * np.diff(y))])
    cdf /= cdf[-1]
    empirical = np.arange(1, samples.size + 1) / samples.size
    ks = np.max(np.abs(np.interp(samples, y, cdf) - empirical))
    assert ks < 0.006  # KS 1% critical value for n=200k is ~0.0036


def test_sampler_agrees_with_distrax_moments():
    params = _gmm_1d()
    ours = networks.sample(params, jax.random.PRNGKey(3), 200_000)
    ref = networks.gmm_distribution(params).sample(seed=jax.random.PRNGKey(4), sample_shape=(200_000,))
    np.testing.assert_allclose(jnp.mean(ours), jnp.mean(ref), atol=0.01)
    np.testing.assert_allclose(jnp.std(ours), jnp.std(ref), atol=0.01)


def test_deterministic_action_is_tanh_of_heaviest_component_mean():
    params = _gmm_1d()  # heaviest logit is component 2 (0.8), mean 0.4
    np.testing.assert_allclose(networks.deterministic_action(params), [np.tanh(0.4)], rtol=1e-6)
