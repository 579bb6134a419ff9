"""Tests for mb2po_jax.termination against the real gymnasium v5 envs.

The reference is the env's own ``terminated`` flag: transitions come from
seeded random-action episodes (which, for hopper and walker2d, end by the torso
angle within ~10-70 steps) plus one-step transitions from randomly perturbed
MuJoCo states (set with ``set_state``) around the height and angle bounds, so
that both the height and the angle conditions are exercised on both sides.
"""

from __future__ import annotations

import math

import chex
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mb2po_jax import termination as T
from mb2po_jax.envs import ENVS, get_termination_fn
from mb2po_jax.termination import (
    halfcheetah_termination_fn,
    hopper_termination_fn,
    walker2d_termination_fn,
)

ENV_IDS = {"hopper": "Hopper-v5", "walker2d": "Walker2d-v5", "halfcheetah": "HalfCheetah-v5"}
OBS_DIMS = {"hopper": 11, "walker2d": 17, "halfcheetah": 17}
ACT_DIMS = {"hopper": 3, "walker2d": 6, "halfcheetah": 6}

# Perturbed-state sampling ranges for (z, angle), wider than the healthy ranges.
PERTURB_RANGES = {
    "hopper": ((0.5, 1.5), (-0.4, 0.4)),
    "walker2d": ((0.6, 2.3), (-1.4, 1.4)),
}


def _episode_transitions(env_id: str, num_episodes: int, seed: int, max_steps: int = 200):
    """Seeded random-action episodes; returns (obs, act, next_obs, terminated, z, angle)."""
    env = gym.make(env_id)
    env.action_space.seed(seed)
    out = {k: [] for k in ("obs", "act", "next_obs", "terminated", "z", "angle")}
    for ep in range(num_episodes):
        obs, _ = env.reset(seed=seed + ep)
        for _ in range(max_steps):
            act = env.action_space.sample()
            next_obs, _, terminated, truncated, _ = env.step(act)
            z, angle = env.unwrapped.data.qpos[1:3]
            for k, v in zip(out, (obs, act, next_obs, terminated, z, angle)):
                out[k].append(v)
            if terminated or truncated:
                break
            obs = next_obs
    env.close()
    return {k: np.asarray(v) for k, v in out.items()}


def _perturbed_transitions(env_id: str, name: str, num: int, seed: int):
    """One step from random MuJoCo states spanning both sides of the z/angle bounds."""
    env = gym.make(env_id)
    env.action_space.seed(seed)
    env.reset(seed=seed)
    u = env.unwrapped
    rng = np.random.default_rng(seed)
    z_range, angle_range = PERTURB_RANGES[name]
    out = {k: [] for k in ("obs", "act", "next_obs", "terminated", "z", "angle")}
    for _ in range(num):
        qpos = u.init_qpos + rng.uniform(-0.1, 0.1, u.model.nq)
        qpos[1] = rng.uniform(*z_range)
        qpos[2] = rng.uniform(*angle_range)
        qvel = rng.uniform(-2.0, 2.0, u.model.nv)
        u.set_state(qpos, qvel)
        obs = u._get_obs()
        act = env.action_space.sample()
        # The unwrapped env: no TimeLimit / order checks across these one-step resets.
        next_obs, _, terminated, _, _ = u.step(act)
        z, angle = u.data.qpos[1:3]
        for k, v in zip(out, (obs, act, next_obs, terminated, z, angle)):
            out[k].append(v)
    env.close()
    return {k: np.asarray(v) for k, v in out.items()}


@pytest.fixture(scope="module", params=["hopper", "walker2d"])
def env_data(request):
    name = request.param
    env_id = ENV_IDS[name]
    episodes = _episode_transitions(env_id, num_episodes=30, seed=0)
    perturbed = _perturbed_transitions(env_id, name, num=300, seed=1)
    return name, episodes, perturbed


def _assert_matches_env(name: str, data: dict[str, np.ndarray]):
    fn = jax.jit(get_termination_fn(ENV_IDS[name]))
    done = np.asarray(fn(jnp.asarray(data["obs"]), jnp.asarray(data["act"]), jnp.asarray(data["next_obs"])))
    chex.assert_shape(done, (len(data["terminated"]),))
    assert done.dtype == np.bool_
    mismatch = np.flatnonzero(done != data["terminated"])
    assert mismatch.size == 0, (
        f"{name}: {mismatch.size}/{done.size} transitions disagree with env.terminated; "
        f"first: next_obs={data['next_obs'][mismatch[0]]}, env={data['terminated'][mismatch[0]]}"
    )


def test_matches_env_on_random_episodes(env_data):
    name, episodes, _ = env_data
    n, n_term = len(episodes["terminated"]), int(episodes["terminated"].sum())
    assert n >= 300 and n_term >= 12, (n, n_term)
    # Observation layout: obs[0] is the height qpos[1], obs[1] the angle qpos[2].
    np.testing.assert_array_equal(episodes["next_obs"][:, 0], episodes["z"])
    np.testing.assert_array_equal(episodes["next_obs"][:, 1], episodes["angle"])
    _assert_matches_env(name, episodes)


def test_matches_env_on_perturbed_states(env_data):
    name, _, perturbed = env_data
    env = gym.make(ENV_IDS[name]).unwrapped
    (z_lo, z_hi), (a_lo, a_hi) = env._healthy_z_range, env._healthy_angle_range
    z, angle, term = perturbed["z"], perturbed["angle"], perturbed["terminated"]
    bad_z = ~((z > z_lo) & (z < z_hi))
    bad_angle = ~((angle > a_lo) & (angle < a_hi))
    # Coverage: terminations by height only, by angle only, and healthy states.
    assert (bad_z & ~bad_angle).sum() >= 10
    assert (bad_angle & ~bad_z).sum() >= 10
    assert (~term).sum() >= 50
    _assert_matches_env(name, perturbed)


@pytest.mark.parametrize("name", ["hopper", "walker2d"])
def test_constants_match_gymnasium_v5_defaults(name):
    env = gym.make(ENV_IDS[name]).unwrapped
    assert env._exclude_current_positions_from_observation
    assert env._terminate_when_unhealthy
    assert env.observation_space.shape == (OBS_DIMS[name],)
    prefix = name.upper()
    assert tuple(env._healthy_z_range) == getattr(T, f"{prefix}_HEALTHY_Z_RANGE")
    assert tuple(env._healthy_angle_range) == getattr(T, f"{prefix}_HEALTHY_ANGLE_RANGE")
    if name == "hopper":
        assert tuple(env._healthy_state_range) == T.HOPPER_HEALTHY_STATE_RANGE
        assert T.HOPPER_HEALTHY_Z_RANGE == (0.7, math.inf)


def test_halfcheetah_never_done(tmp_path, monkeypatch):
    # MuJoCo logs a 'settotalmass' deprecation warning for half_cheetah.xml to
    # ./MUJOCO_LOG.TXT; keep it out of the repository.
    monkeypatch.chdir(tmp_path)
    env = gym.make("HalfCheetah-v5")
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    rows = []
    for _ in range(200):
        act = env.action_space.sample()
        next_obs, _, terminated, _, _ = env.step(act)
        assert not terminated
        rows.append((obs, act, next_obs))
        obs = next_obs
    obs, act, next_obs = (np.asarray(x) for x in zip(*rows))
    fn = jax.jit(get_termination_fn("HalfCheetah-v5"))
    done = fn(obs, act, next_obs)
    chex.assert_shape(done, (200,))
    assert not bool(jnp.any(done))
    # Even for garbage next states.
    weird = jnp.full((4, 17), jnp.nan).at[1].set(1e6).at[2].set(-1e6)
    assert not bool(jnp.any(halfcheetah_termination_fn(weird, jnp.zeros((4, 6)), weird)))


def _healthy_hopper_obs() -> np.ndarray:
    s = np.zeros(11, np.float32)
    s[0] = 1.25  # height
    return s


def test_hopper_state_bound_is_two_sided():
    fn = jax.jit(hopper_termination_fn)
    a = jnp.zeros(3)
    s = _healthy_hopper_obs()
    assert not bool(fn(s, a, s))
    for idx, value in [(3, -150.0), (3, 150.0), (10, -100.5), (10, 100.0), (2, -100.0)]:
        bad = s.copy()
        bad[idx] = value
        assert bool(fn(s, a, bad)), (idx, value)
    # MOPO's `np.abs(s[:, 1:] < 100)` would have called s'[3] = -150 healthy.
    bad = s.copy()
    bad[3] = -150.0
    assert np.abs(bad[None, 1:] < 100).all(axis=-1)[0]
    # Just inside the bound is fine.
    ok = s.copy()
    ok[3], ok[10] = -99.0, 99.0
    assert not bool(fn(s, a, ok))


@pytest.mark.parametrize(
    "idx, value, done",
    [
        (0, 0.7, True),  # height bound is strict
        (0, 0.71, False),
        (0, 50.0, False),  # no finite upper height bound for hopper
        (0, np.inf, True),
        (1, 0.2, True),  # angle bound is strict
        (1, -0.2, True),
        (1, 0.19, False),
        (1, -0.19, False),
    ],
)
def test_hopper_height_and_angle(idx, value, done):
    s = _healthy_hopper_obs()
    s[idx] = value
    assert bool(hopper_termination_fn(s, jnp.zeros(3), s)) is done


@pytest.mark.parametrize(
    "idx, value, done",
    [
        (0, 0.8, True),
        (0, 0.81, False),
        (0, 1.99, False),
        (0, 2.0, True),
        (1, -1.0, True),
        (1, 0.99, False),
        (1, 1.0, True),
        (5, 1e6, False),  # walker2d has no state-range bound
    ],
)
def test_walker2d_height_and_angle(idx, value, done):
    s = np.zeros(17, np.float32)
    s[0] = 1.25
    s[idx] = value
    assert bool(walker2d_termination_fn(s, jnp.zeros(6), s)) is done


@pytest.mark.parametrize("name", ["hopper", "walker2d"])
@pytest.mark.parametrize("idx", [0, 1, 5])
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_is_done(name, idx, value):
    s = np.zeros(OBS_DIMS[name], np.float32)
    s[0] = 1.25
    s[idx] = value
    fn = get_termination_fn(name)
    assert bool(fn(s, jnp.zeros(ACT_DIMS[name]), s))


@pytest.mark.parametrize(
    "env, expected",
    [
        ("hopper", hopper_termination_fn),
        ("Hopper-v5", hopper_termination_fn),
        ("HOPPER-v2", hopper_termination_fn),
        (" hopper ", hopper_termination_fn),
        ("halfcheetah", halfcheetah_termination_fn),
        ("HalfCheetah-v5", halfcheetah_termination_fn),
        ("walker2d", walker2d_termination_fn),
        ("Walker2d-v5", walker2d_termination_fn),
        ("WALKER2D-v4", walker2d_termination_fn),
    ],
)
def test_registry_lookup(env, expected):
    assert get_termination_fn(env) is expected


@pytest.mark.parametrize("env", ["Ant-v5", "humanoid", "hopper-medium-v2", ""])
def test_unknown_env_raises(env):
    with pytest.raises(ValueError) as info:
        get_termination_fn(env)
    msg = str(info.value)
    assert repr(env) in msg
    for name in ENVS:
        assert name in msg
    assert "mb2po_jax/envs.py" in msg and "To add one" in msg


@pytest.mark.parametrize("name", ["hopper", "walker2d", "halfcheetah"])
def test_wrong_obs_dim_raises(name):
    # E.g. observations that still contain the x position.
    s = jnp.zeros((5, OBS_DIMS[name] + 1))
    with pytest.raises(ValueError, match=rf"\[\.\.\., {OBS_DIMS[name]}\]"):
        get_termination_fn(name)(s, jnp.zeros((5, ACT_DIMS[name])), s)


@pytest.mark.parametrize("name", ["hopper", "walker2d", "halfcheetah"])
def test_jit_vmap_and_batch_shapes(name):
    fn = get_termination_fn(name)
    d, a = OBS_DIMS[name], ACT_DIMS[name]
    rng = np.random.default_rng(0)
    obs = jnp.asarray(rng.normal(size=(4, 8, d)), jnp.float32)
    act = jnp.asarray(rng.normal(size=(4, 8, a)), jnp.float32)
    next_obs = rng.normal(scale=0.5, size=(4, 8, d)).astype(np.float32)
    next_obs[..., 0] += 1.2
    next_obs[0, 0, 3] = np.nan
    next_obs = jnp.asarray(next_obs)

    batched = jax.jit(fn)(obs, act, next_obs)
    chex.assert_shape(batched, (4, 8))
    chex.assert_type(batched, jnp.bool_)

    vmapped = jax.jit(jax.vmap(jax.vmap(fn)))(obs, act, next_obs)
    chex.assert_shape(vmapped, (4, 8))
    np.testing.assert_array_equal(vmapped, batched)

    flat = fn(obs.reshape(-1, d), act.reshape(-1, a), next_obs.reshape(-1, d))
    chex.assert_shape(flat, (32,))
    np.testing.assert_array_equal(flat.reshape(4, 8), batched)

    single = jax.jit(fn)(obs[0, 0], act[0, 0], next_obs[0, 0])
    chex.assert_shape(single, ())
    assert bool(single) is (name != "halfcheetah")  # NaN is done unless never-done
    if name != "halfcheetah":
        assert bool(jnp.any(~batched)) and bool(jnp.any(batched))  # both outcomes occur
