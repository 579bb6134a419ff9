"""Fraction of saturated sampled actions (|a| > 0.99) and the policy's
component std, at 4096 dataset states, for checkpoints given as WORKDIR:PHASE:STEP."""
import sys
import jax, jax.numpy as jnp, numpy as np
from mb2po_jax.pipeline import Settings, prepare_dataset
from diag_common import checkpoints

data = None
for spec, agent, state, config, meta in checkpoints(sys.argv[1:]):
    if data is None:
        data = prepare_dataset(Settings.from_config(config).data)
        rows = np.random.default_rng(0).choice(len(data.transitions.observations), 4096, replace=False)
        obs = jnp.asarray(np.asarray(data.transitions.observations)[rows])
        acts = np.asarray(data.transitions.actions)[rows]
        print("dataset actions: |a|>0.99 fraction", float(np.mean(np.abs(acts) > 0.99)))
    params = agent.policy_params(state)
    a = np.asarray(jax.jit(agent.sample_action)(params, obs, jax.random.split(jax.random.PRNGKey(0), 4096)))
    det = np.asarray(jax.jit(agent.act)(params, obs))
    print(spec, "sampled |a|>0.99:", round(float(np.mean(np.abs(a) > 0.99)), 3),
          "deterministic |a|>0.99:", round(float(np.mean(np.abs(det) > 0.99)), 3),
          "mean |a| sampled", round(float(np.mean(np.abs(a))), 3), "det", round(float(np.mean(np.abs(det))), 3))
