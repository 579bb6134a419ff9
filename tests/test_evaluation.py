"""Tests for mb2po_jax.evaluation: D4RL normalisation and vectorised evaluation.

The reference for ``evaluate`` is a hand-written single-env loop that resets
episode ``k`` with ``seed + k``; matching it per episode checks the seeding
scheme, and matching episode lengths shows that no autoreset step is counted.
"""

from __future__ import annotations

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mb2po_jax.envs import D4RL_REF_SCORES
from mb2po_jax.evaluation import evaluate, evaluate_policies, normalized_score

ENV_ID = "Hopper-v5"
ACT_DIM = 3
OBS_DIM = 11


def zero_policy(obs: np.ndarray) -> np.ndarray:
    return np.zeros((obs.shape[0], ACT_DIM), dtype=np.float32)


def reference_rollouts(
    num_episodes: int, seed: int, action: np.ndarray
) -> tuple[list[float], list[int]]:
    """Plain non-vector loop: episode k is reset with seed + k."""
    env = gym.make(ENV_ID)
    returns, lengths = [], []
    for k in range(num_episodes):
        env.reset(seed=seed + k)
        total, steps, done = 0.0, 0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            steps += 1
            done = terminated or truncated
        returns.append(total)
        lengths.append(steps)
    env.close()
    return returns, lengths


@pytest.mark.parametrize("env", sorted(D4RL_REF_SCORES))
def test_normalized_score_at_references(env: str) -> None:
    low, high = D4RL_REF_SCORES[env]
    assert normalized_score(env, low) == pytest.approx(0.0)
    assert normalized_score(env, high) == pytest.approx(100.0)


def test_normalized_score_maps_gymnasium_ids() -> None:
    low, high = D4RL_REF_SCORES["halfcheetah"]
    mid = (low + high) / 2
    assert normalized_score("HalfCheetah-v5", mid) == pytest.approx(50.0)
    assert normalized_score("Walker2d-v4", 1000.0) == normalized_score("walker2d", 1000.0)
    assert normalized_score("Hopper-v5", 3234.3) == pytest.approx(100.0)
    scores = normalized_score("hopper", np.array(D4RL_REF_SCORES["hopper"]))
    np.testing.assert_allclose(scores, [0.0, 100.0])


def test_normalized_score_explicit_refs() -> None:
    assert normalized_score("Ant-v5", 50.0, ref_scores=(0.0, 200.0)) == pytest.approx(25.0)


def test_normalized_score_unknown_env() -> None:
    with pytest.raises(ValueError, match="Ant-v5") as info:
        normalized_score("Ant-v5", 1.0)
    message = str(info.value)
    assert "hopper" in message and "ref_scores" in message


def test_evaluate_matches_single_env_loop() -> None:
    # 5 episodes on 2 envs: each env runs several episodes of different
    # lengths, so resets happen while the other env is mid-episode.
    num_episodes, seed = 5, 3
    result = evaluate(zero_policy, ENV_ID, num_episodes, seed=seed, num_envs=2)
    ref_returns, ref_lengths = reference_rollouts(num_episodes, seed, np.zeros(ACT_DIM))

    assert result["num_episodes"] == num_episodes
    assert len(result["returns"]) == num_episodes
    # Exact lengths: a counted autoreset step would add one step (and its
    # reward) to every episode after the first in each env.
    assert result["episode_lengths"] == ref_lengths
    assert len(set(ref_lengths)) > 1  # episodes really do end at different times
    np.testing.assert_allclose(result["returns"], ref_returns, rtol=1e-10)
    assert result["episode_length_mean"] == pytest.approx(np.mean(ref_lengths))
    assert result["return_mean"] == pytest.approx(np.mean(ref_returns))
    assert result["return_std"] == pytest.approx(np.std(ref_returns))
    expected_norm = normalized_score(ENV_ID, np.array(ref_returns))
    assert result["normalized_score"] == pytest.approx(np.mean(expected_norm))
    assert result["normalized_score_std"] == pytest.approx(np.std(expected_norm))
    assert result["env_id"] == ENV_ID


def test_evaluate_deterministic_and_independent_of_num_envs() -> None:
    policy = jax.jit(lambda obs: jnp.zeros((obs.shape[0], ACT_DIM)))
    first = evaluate(policy, ENV_ID, 4, seed=11)
    again = evaluate(policy, ENV_ID, 4, seed=11)
    serial = evaluate(policy, ENV_ID, 4, seed=11, num_envs=1)
    other_seed = evaluate(policy, ENV_ID, 4, seed=12)
    assert first["returns"] == again["returns"]
    np.testing.assert_allclose(first["returns"], serial["returns"], rtol=1e-10)
    assert first["returns"] != other_seed["returns"]


def test_evaluate_clips_actions() -> None:
    # The action space is [-1, 1]; an out-of-range policy must act like +1.
    result = evaluate(lambda obs: np.full((obs.shape[0], ACT_DIM), 50.0), ENV_ID, 2, seed=0)
    ref_returns, _ = reference_rollouts(2, 0, np.ones(ACT_DIM))
    np.testing.assert_allclose(result["returns"], ref_returns, rtol=1e-10)


def test_evaluate_max_episode_steps_and_unknown_refs() -> None:
    result = evaluate(
        lambda obs: np.zeros((obs.shape[0], 2)), "Swimmer-v5", 3, max_episode_steps=20
    )
    assert result["episode_lengths"] == [20, 20, 20]
    assert result["normalized_score"] is None
    assert result["normalized_score_std"] is None

    scored = evaluate(
        lambda obs: np.zeros((obs.shape[0], 2)),
        "Swimmer-v5",
        1,
        max_episode_steps=5,
        ref_scores=(0.0, 100.0),
    )
    assert scored["normalized_score"] == pytest.approx(scored["return_mean"])


def test_evaluate_policies_in_one_vector_env_equals_each_alone() -> None:
    # Three different deterministic linear policies, stacked as a vmapped
    # policy would be: each one's episodes must be exactly its own evaluation.
    weights = np.random.default_rng(0).normal(scale=0.3, size=(3, OBS_DIM, ACT_DIM))
    calls = []

    def stacked(obs: np.ndarray) -> np.ndarray:  # [3, n, obs] -> [3, n, act]
        calls.append(obs.shape)
        return np.tanh(np.einsum("pno,poa->pna", obs, weights))

    together = evaluate_policies(stacked, ENV_ID, 5, num_policies=3, seed=4, num_envs=2)
    assert len(together) == 3 and all(shape[:2] == (3, 2) for shape in calls)
    for p, result in enumerate(together):
        alone = evaluate(lambda obs, w=weights[p]: np.tanh(obs @ w), ENV_ID, 5, seed=4, num_envs=2)
        assert result == alone
    assert together[0]["returns"] != together[1]["returns"]  # the policies really differ
    with pytest.raises(ValueError, match="num_policies"):
        evaluate_policies(stacked, ENV_ID, 5, num_policies=0)
