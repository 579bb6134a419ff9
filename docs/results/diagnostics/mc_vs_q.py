"""Does the critic overestimate the policy? For 64 restorable dataset states:
Q(s, a0) (min over critics of the mean over quantiles) against the simulator's
discounted Monte-Carlo return of the same policy (sampled actions, a0 first),
500 steps or until the walker falls (gamma^500 < 0.007).
Usage: python mc_vs_q.py WORKDIR:PHASE:STEP ..."""
import json, sys
import jax, jax.numpy as jnp, numpy as np
from diag_common import checkpoints, make_envs, play, restorable_starts

N, T, GAMMA = 64, 500, 0.99
probe = None
for spec, agent, state, config, meta in checkpoints(sys.argv[1:]):
    if probe is None:
        probe, starts = restorable_starts(config, meta, N)
        envs = make_envs(meta["env_id"], N)
    params = agent.policy_params(state)
    sample = jax.jit(agent.sample_action)
    key, q0 = [jax.random.PRNGKey(7)], []

    def act(t, obs):
        key[0], sub = jax.random.split(key[0])
        a = np.asarray(sample(params, jnp.asarray(obs), jax.random.split(sub, N)))
        if t == 0:
            q0.append(np.asarray(agent.q_value(state, jnp.asarray(obs), jnp.asarray(a))))
        return a

    ret, alive, length = play(envs, probe, starts, act, T, GAMMA)
    q0 = q0[0]
    print(json.dumps({"checkpoint": spec, "q_mean": float(q0.mean()), "mc_return_mean": float(ret.mean()),
                      "overestimate_mean": float((q0 - ret).mean()), "fell_within_500": float(1 - alive.mean()),
                      "mean_steps": float(length.mean())}))
