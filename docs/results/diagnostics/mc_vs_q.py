"""Does the critic overestimate the policy? For 64 restorable dataset states:
Q(s, a0) (min over critics of the mean over quantiles) against the simulator's
discounted Monte-Carlo return of the same policy (sampled actions, a0 first),
500 steps or until the walker falls (gamma^500 < 0.007).
Usage: python mc_vs_q.py WORKDIR:PHASE:STEP ..."""
import json, sys
import gymnasium as gym
import jax, jax.numpy as jnp, numpy as np
from mb2po_jax.model.simulator_check import SimulatorProbe
from experiments.evaluate import restore_policy
from experiments.common import prepare_dataset

N, T, GAMMA = 64, 500, 0.99
data = probe = None
for spec in sys.argv[1:]:
    workdir, phase, step = spec.split(":"); step = int(step)
    agent, state, config, meta, _, _ = restore_policy(workdir, phase=phase, step=step)
    ds = meta["dataset"]
    if data is None:
        data = prepare_dataset(config)
        probe = SimulatorProbe(meta["env_id"], ds["obs_dim"])
        obs_all = np.asarray(data.transitions.observations)
        ok = np.flatnonzero(probe.restorable(obs_all))
        starts = obs_all[np.random.default_rng(0).choice(ok, N, replace=False)]
        envs = [gym.make(meta["env_id"]).unwrapped for _ in range(N)]
        for e in envs: e.reset(seed=0)
    params = agent.policy_params(state)
    sample = jax.jit(agent.sample_action)
    key = jax.random.PRNGKey(7)
    for e, o in zip(envs, starts):
        e.set_state(np.concatenate([[0.0], o[:probe.nq - 1]]), o[probe.nq - 1:])
    obs = starts.astype(np.float32)
    ret, disc, alive, length = np.zeros(N), np.ones(N), np.ones(N, bool), np.zeros(N)
    for t in range(T):
        key, sub = jax.random.split(key)
        a = np.asarray(sample(params, jnp.asarray(obs), jax.random.split(sub, N)))
        if t == 0:
            q0 = np.asarray(agent.q_value(state, jnp.asarray(obs), jnp.asarray(a)))
        for i, e in enumerate(envs):
            if not alive[i]:
                continue
            o, r, term, _, _ = e.step(a[i])
            ret[i] += disc[i] * r; disc[i] *= GAMMA; length[i] += 1
            obs[i] = o
            if term:
                alive[i] = False
        if not alive.any():
            break
    print(json.dumps({"checkpoint": spec, "q_mean": float(q0.mean()), "mc_return_mean": float(ret.mean()),
                      "overestimate_mean": float((q0 - ret).mean()), "fell_within_500": float(1 - alive.mean()),
                      "mean_steps": float(length.mean())}))
