"""Deterministic (the harness's: tanh of the heaviest component's mean) vs
stochastic (a ~ pi) evaluation of one checkpoint, on evaluation seeds 20000+.
Usage: python eval_modes.py WORKDIR PHASE STEP EPISODES"""
import json, sys
import jax
from mb2po_jax.evaluation import evaluate
from mb2po_jax.pipeline import restore_policy

workdir, phase, step, episodes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
agent, state, config, meta, _, _ = restore_policy(workdir, phase=phase, step=step)
ds = meta["dataset"]
params = agent.policy_params(state)
refs = (ds["ref_min_score"], ds["ref_max_score"])
act = jax.jit(agent.act)
sample = jax.jit(agent.sample_action)
key = [jax.random.PRNGKey(123)]
def stochastic(obs):
    key[0], sub = jax.random.split(key[0])
    return sample(params, obs, jax.random.split(sub, obs.shape[0]))
out = {"workdir": workdir, "phase": phase, "step": step}
for name, fn in (("deterministic", lambda o: act(params, o)), ("stochastic", stochastic)):
    r = evaluate(fn, meta["env_id"], episodes, seed=20000, ref_scores=refs)
    out[name] = {k: r[k] for k in ("normalized_score", "normalized_score_std", "episode_length_mean")}
print(json.dumps(out))
