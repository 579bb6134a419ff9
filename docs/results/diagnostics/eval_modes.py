"""Deterministic (the harness's: tanh of the heaviest component's mean) vs
stochastic (a ~ pi) evaluation of one checkpoint, on evaluation seeds 20000+.
Usage: python eval_modes.py WORKDIR PHASE STEP EPISODES"""
import json, sys
import jax, numpy as np, ml_collections
from mb2po_jax.checkpoint import Checkpointer
from mb2po_jax.evaluation import evaluate
from experiments.phases import policy_agent, abstract_policy_state, AWAC
from pathlib import Path

workdir, phase, step, episodes = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
with Checkpointer(Path(workdir) / "checkpoints" / phase) as ck:
    meta = ck.restore_meta(step)
    config = ml_collections.ConfigDict(meta["config"])
    ds = meta["dataset"]
    agent = policy_agent(config, phase, ds["obs_dim"], ds["act_dim"])
    abstract = abstract_policy_state(config, phase, ds["obs_dim"], ds["act_dim"])
    if phase == AWAC:
        state, _ = ck.restore(abstract, step)
    else:
        state = ck.restore_part({"agent": abstract.agent}, step)[0]["agent"]
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
