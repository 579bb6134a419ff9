"""The environment table: every paper env's entry is complete and agrees with
the real gymnasium env and with the D4RL references."""

import gymnasium as gym
import jax.numpy as jnp
import numpy as np
import pytest

from mb2po_jax import envs

PAPER_ENVS = ("hopper", "walker2d", "halfcheetah")


@pytest.mark.parametrize("name", PAPER_ENVS)
def test_paper_env_entry_is_complete_and_matches_gymnasium(name):
    spec = envs.ENVS[name]
    assert spec.name == name
    env = gym.make(spec.gym_id)
    try:
        assert env.observation_space.shape == (spec.obs_dim,)
        assert env.action_space.shape == (spec.act_dim,)
        np.testing.assert_array_equal(env.action_space.low, -1.0)
        np.testing.assert_array_equal(env.action_space.high, 1.0)
    finally:
        env.close()
    assert envs.gym_dims(spec.gym_id) == (spec.obs_dim, spec.act_dim)
    low, high = spec.ref_scores
    assert low < high
    obs = jnp.zeros((2, spec.obs_dim))
    done = spec.termination_fn(obs, jnp.zeros((2, spec.act_dim)), obs)
    assert done.shape == (2,) and done.dtype == jnp.bool_


@pytest.mark.parametrize("alias", ["Hopper-v5", "hopper", " HOPPER ", "Hopper-v4"])
def test_lookup_by_name_or_gym_id(alias):
    assert envs.get_env(alias) is envs.ENVS["hopper"]
    assert envs.get_termination_fn(alias) is envs.ENVS["hopper"].termination_fn


def test_reference_scores_read_d4rl_dataset_names_but_termination_does_not():
    assert envs.lookup_ref_scores("hopper-medium-v2") == envs.ENVS["hopper"].ref_scores
    assert envs.lookup_ref_scores("Ant-v5") is None
    with pytest.raises(ValueError, match="hopper-medium-v2"):
        envs.get_termination_fn("hopper-medium-v2")


def test_unknown_env_names_the_known_ones_and_the_fix():
    with pytest.raises(ValueError) as info:
        envs.get_env("humanoid")
    message = str(info.value)
    assert "'humanoid'" in message and "mb2po_jax/envs.py" in message
    for name in PAPER_ENVS:
        assert name in message


def test_gym_dims_refuses_actions_outside_unit_box():
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        envs.gym_dims("Pendulum-v1")
