"""Does the critic see the falls coming? Along the policy's own episodes (sampled
actions, the policy the critic estimates; reset seeds 20000+k, never the
harness's 10000+), Q(s_t, a_t) (min over critics of the mean over quantiles)
against the discounted return that followed, G_t = sum_k gamma^k r_{t+k} to the
episode's end, grouped by how many steps before a fall (termination) the state
was. Steps of episodes cut by the time limit count only up to 300 steps before
the cut (gamma^300 < 0.05), as "no fall".
Usage: python q_along_episodes.py EPISODES WORKDIR:PHASE:STEP ..."""
import json, sys
import gymnasium as gym
import jax, jax.numpy as jnp, numpy as np
from diag_common import checkpoints

GAMMA, SEED = 0.99, 20000
BINS = [(0, 10), (10, 50), (50, 150), (150, 10**9)]  # steps before the fall

episodes = int(sys.argv[1])
for spec, agent, state, config, meta in checkpoints(sys.argv[2:]):
    params = agent.policy_params(state)
    sample, q = jax.jit(agent.sample_action), jax.jit(agent.q_value)
    envs = [gym.make(meta["env_id"]) for _ in range(episodes)]
    obs = np.stack([e.reset(seed=SEED + k)[0] for k, e in enumerate(envs)]).astype(np.float32)
    alive = np.ones(episodes, bool)
    qs, rewards = [[] for _ in envs], [[] for _ in envs]
    fell = np.zeros(episodes, bool)
    key = jax.random.PRNGKey(11)
    while alive.any():
        key, sub = jax.random.split(key)
        a = np.asarray(sample(params, jnp.asarray(obs), jax.random.split(sub, episodes)))
        qa = np.asarray(q(state, jnp.asarray(obs), jnp.asarray(a)))
        for i, e in enumerate(envs):
            if not alive[i]:
                continue
            o, r, term, trunc, _ = e.step(a[i])
            qs[i].append(qa[i]); rewards[i].append(r); obs[i] = o
            if term or trunc:
                alive[i], fell[i] = False, term
    groups = {f"{lo}-{hi}" if hi < 10**9 else f">{lo}": [] for lo, hi in BINS}
    groups["no fall"] = []
    for i in range(episodes):
        r = np.asarray(rewards[i]); g = np.zeros(len(r)); acc = 0.0
        for t in range(len(r) - 1, -1, -1):
            acc = r[t] + GAMMA * acc; g[t] = acc
        bias = np.asarray(qs[i]) - g
        if fell[i]:
            before = len(r) - np.arange(len(r))  # steps until the fall, 1 at the last step
            for (lo, hi), name in zip(BINS, groups):
                groups[name].extend(bias[(before > lo) & (before <= hi)].tolist())
        else:
            groups["no fall"].extend(bias[: max(len(r) - 300, 0)].tolist())
    lengths = [len(r) for r in rewards]
    print(json.dumps({
        "checkpoint": spec, "episodes": episodes, "fell": int(fell.sum()),
        "episode_length_mean": float(np.mean(lengths)),
        "return_mean": float(np.mean([np.sum(r) for r in rewards])),
        "q_minus_return_by_steps_before_fall": {
            k: {"mean": round(float(np.mean(v)), 1), "n": len(v)} for k, v in groups.items() if v},
    }))
