"""Can the critic rank the policy's own actions? At S restorable dataset states
(rng 0), K actions sampled from the policy; for each (state, action) the
simulator plays the action and then the sampled policy, R times, up to T steps
or the fall, giving discounted returns G; the K actions of a state share each
rollout's later policy keys (common random numbers). Per state, the correlation across
the K actions between Q(s, a_k) (min over critics of the mean over quantiles)
and the mean of G over the R rollouts; and, as the ceiling the Monte-Carlo
noise leaves, the correlation between the first and the second rollout's G.
The AWR step on model rows at h = 1 sees exactly these (s, a_k) and their Q.
Usage: python q_ranking.py WORKDIR:PHASE:STEP ..."""
import json, sys
import jax, jax.numpy as jnp, numpy as np
from diag_common import checkpoints, make_envs, play, restorable_starts

S, K, R, T, GAMMA = 48, 8, 2, 500, 0.99


def corr(x, y):
    x, y = x - x.mean(), y - y.mean()
    d = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / d) if d > 0 else 0.0


probe = None
n = S * K * R
for spec, agent, state, config, meta in checkpoints(sys.argv[1:]):
    if probe is None:
        probe, starts = restorable_starts(config, meta, S)
        envs = make_envs(meta["env_id"], n)
    params = agent.policy_params(state)
    sample = jax.jit(agent.sample_action)
    key = jax.random.PRNGKey(3)
    # K actions per state: one sample call on the state repeated K times.
    rep = np.repeat(starts, K, axis=0).astype(np.float32)  # [S*K, obs], state-major
    key, sub = jax.random.split(key)
    actions = np.asarray(sample(params, jnp.asarray(rep), jax.random.split(sub, S * K)))
    q0 = np.asarray(agent.q_value(state, jnp.asarray(rep), jnp.asarray(actions)))  # [S*K]
    first = np.repeat(actions, R, axis=0)  # rollout-minor, as the starts below
    keys_left = [key]

    def act(t, obs):
        if t == 0:
            return first
        # Common random numbers: the K actions of a state share rollout r's
        # policy keys, so their returns differ by the first action's effect
        # and not by the later sampling noise.
        keys_left[0], sub = jax.random.split(keys_left[0])
        keys = jax.random.split(sub, S * R).reshape(S, 1, R, 2)
        keys = jnp.broadcast_to(keys, (S, K, R, 2)).reshape(n, 2)
        return np.asarray(sample(params, jnp.asarray(obs), keys))

    ret, alive, _ = play(envs, probe, np.repeat(rep, R, axis=0), act, T, GAMMA)
    g = ret.reshape(S, K, R)
    q = q0.reshape(S, K)
    c_q = [corr(q[s], g[s].mean(1)) for s in range(S)]
    c_mc = [corr(g[s, :, 0], g[s, :, 1]) for s in range(S)]
    print(json.dumps({
        "checkpoint": spec, "states": S, "actions_per_state": K, "rollouts": R,
        "corr_q_vs_return_mean": round(float(np.mean(c_q)), 3),
        "corr_rollout1_vs_rollout2_mean": round(float(np.mean(c_mc)), 3),
        "std_q_across_actions": round(float(q.std(1).mean()), 2),
        "std_return_across_actions": round(float(g.mean(2).std(1).mean()), 2),
        "q_mean": round(float(q.mean()), 1), "return_mean": round(float(g.mean()), 1),
        "still_standing_at_T": round(float(alive.mean()), 3),
    }))
