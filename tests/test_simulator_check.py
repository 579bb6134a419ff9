"""The model-vs-simulator check: restoring dataset states into MuJoCo, and the
sign and scale of what it reports."""

from __future__ import annotations

import gymnasium as gym
import jax
import numpy as np
import pytest

from mb2po_jax.model import simulator_check
from mb2po_jax.model.dynamics import DynamicsConfig, make_dynamics, make_dynamics_data
from mb2po_jax.transitions import Transitions


def _trajectory(env_id: str, steps: int, seed: int = 3):
    """(observations, actions, next observations, rewards, terminated) of a gentle
    random policy (small actions keep the walker's velocities in range), float64 as the env returns them, kept only while |qvel| <= 10 (the
    observation clips larger velocities, so those states are not restorable)."""
    env = gym.make(env_id)
    obs, _ = env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(steps):
        action = rng.uniform(-0.3, 0.3, env.action_space.shape)
        unclipped = np.all(np.abs(env.unwrapped.data.qvel) <= 10.0)
        next_obs, reward, terminated, truncated, _ = env.step(action)
        if unclipped:
            rows.append((obs, action, next_obs, reward, terminated))
        if terminated or truncated:
            break
        obs = next_obs
    env.close()
    return [np.asarray(column) for column in zip(*rows)]


@pytest.mark.parametrize("env_id", ["Hopper-v5", "Walker2d-v5", "HalfCheetah-v5"])
def test_probe_reproduces_the_env_step_from_an_observation(env_id: str) -> None:
    obs, actions, next_obs, rewards, terminated = _trajectory(env_id, 40)
    assert len(obs) >= 10
    probe = simulator_check.make_probe(env_id, obs.shape[1])
    assert probe is not None
    try:
        # The probe starts each row from x = 0; the env's x differs, which
        # changes neither the next observation nor the reward.
        out = probe.step(obs, actions)
    finally:
        probe.close()
    np.testing.assert_allclose(out["next_observations"], next_obs, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(out["rewards"], rewards, rtol=1e-4, atol=1e-4)
    np.testing.assert_array_equal(out["terminated"], terminated)


@pytest.mark.parametrize("env_id, clip", [("Hopper-v5", 10.0), ("Walker2d-v5", 10.0),
                                           ("HalfCheetah-v5", None)])
def test_rows_with_a_clipped_velocity_are_not_restorable(env_id: str, clip) -> None:
    """The clip bound is read from the env; a row at the bound has lost part of
    its state, and restoring it does not reproduce the env's step."""
    probe = simulator_check.make_probe(env_id, 11 if env_id == "Hopper-v5" else 17)
    try:
        assert probe.velocity_clip == clip
        if clip is None:
            assert probe.restorable(np.full((2, probe.nq - 1 + probe.nv), 50.0)).all()
            return
        env = gym.make(env_id)
        obs, _ = env.reset(seed=0)
        raw = env.unwrapped
        qvel = np.array(raw.data.qvel)
        qvel[-1] = 25.0  # a foot spinning faster than the observation shows
        raw.set_state(np.array(raw.data.qpos), qvel)
        obs = raw._get_obs()
        action = np.zeros(env.action_space.shape)
        true_next = raw.step(action)[0]
        env.close()
        assert obs[-1] == pytest.approx(clip)
        rows = np.stack([obs, np.where(np.abs(obs) >= clip, 0.0, obs)])
        np.testing.assert_array_equal(probe.restorable(rows), [False, True])
        # Restored, the clipped row starts from another state: a different step.
        assert not np.allclose(probe.step(obs[None], action[None])["next_observations"][0],
                               true_next, atol=1e-3)
    finally:
        probe.close()


def test_no_probe_where_states_are_not_observations() -> None:
    # Classic control (no MuJoCo model) and a wrong observation size.
    assert simulator_check.make_probe("Pendulum-v1", 3) is None
    assert simulator_check.make_probe("Hopper-v5", 12) is None


def test_compare_signs_and_scales() -> None:
    true = {"next_observations": np.zeros((4, 2), np.float32),
            "rewards": np.array([1.0, 2.0, 3.0, 4.0], np.float32),
            "terminated": np.array([True, False, False, False])}
    predicted = {"next_observations": np.full((4, 2), 0.5, np.float32),
                 "rewards": true["rewards"] + np.array([1.0, 1.0, 3.0, -1.0]),
                 "penalty": np.full(4, 0.3, np.float32)}
    got = simulator_check.compare(predicted, true, "policy")
    assert got["sim_reward_bias_policy"] == pytest.approx(1.0)  # the model flatters by 1
    assert got["sim_reward_abs_error_policy"] == pytest.approx(1.5)
    assert got["sim_true_reward_policy"] == pytest.approx(2.5)
    assert got["sim_state_mse_policy"] == pytest.approx(0.25)
    assert got["sim_penalty_policy"] == pytest.approx(0.3)
    assert got["sim_termination_policy"] == pytest.approx(0.25)


def test_model_prediction_averages_the_elites_and_scales_the_penalty() -> None:
    """Against a NumPy reference on an untrained ensemble: the mean over the
    elites of (s + delta, r), and lambda times max over elites of ||sigma||."""
    obs_dim, act_dim, n = 3, 2, 16
    rng = np.random.default_rng(0)
    data = Transitions(
        observations=rng.normal(size=(n, obs_dim)).astype(np.float32),
        actions=rng.uniform(-1, 1, (n, act_dim)).astype(np.float32),
        rewards=rng.normal(size=n).astype(np.float32),
        next_observations=rng.normal(size=(n, obs_dim)).astype(np.float32),
        terminals=np.zeros(n, np.float32),
        timeouts=np.zeros(n, np.float32),
    )
    model = make_dynamics(obs_dim, act_dim, DynamicsConfig(num_members=3, num_elites=2,
                                                           hidden_dims=(8,)))
    state = model.init(jax.random.PRNGKey(0), make_dynamics_data(data))
    state = state.replace(elites=np.array([2, 0]))
    predict = simulator_check.make_model_prediction(model, penalty_coef=0.5)
    got = jax.device_get(predict(state, data.observations, data.actions))
    mean, logvar = (np.asarray(x, np.float64)[[2, 0]]
                    for x in model.predict(state, data.observations, data.actions))
    np.testing.assert_allclose(got["next_observations"],
                               data.observations + mean.mean(0)[:, :-1], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["rewards"], mean.mean(0)[:, -1], rtol=1e-5, atol=1e-6)
    u = np.sqrt(np.exp(logvar).sum(-1)).max(0)
    np.testing.assert_allclose(got["penalty"], 0.5 * u, rtol=1e-5)
