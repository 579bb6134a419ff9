"""Where does a critic's Q run away on the dataset? For every dataset row
(s, a): Q(s, a) (min over critics of the mean over quantiles) against the
row's discounted return-to-go in its episode (the behaviour policy's
Monte-Carlo return; truncated at a timeout, so a lower bound there). Prints,
per checkpoint, the Q quantiles and, for the top 0.1 % of rows by Q against
all rows: return-to-go, steps to the episode's end, the share of those
episodes that end in a fall and of rows within 10 steps of one, the largest
per-feature |z| of s (how far out of the data's range the state is) and |a|
saturation (share of action entries with |a| > 0.99).
Usage: python q_outliers.py WORKDIR:PHASE:STEP ..."""
import json, sys
import jax, jax.numpy as jnp, numpy as np
from diag_common import checkpoints
from mb2po_jax.pipeline import Settings, prepare_dataset

GAMMA, TOP = 0.99, 0.001
t = None
for spec, agent, state, config, meta in checkpoints(sys.argv[1:]):
    if t is None:  # the dataset's per-row statistics, once for every checkpoint
        t = prepare_dataset(Settings.from_config(config).data).transitions
        obs, act = np.asarray(t.observations), np.asarray(t.actions)
        rew, term, tout = (np.asarray(x, np.float64) for x in (t.rewards, t.terminals, t.timeouts))
        n = len(rew)
        end = (term > 0) | (tout > 0)
        end[-1] = True
        # Return-to-go and steps-to-end, backwards within each episode.
        rtg, to_end, term_ahead = np.zeros(n), np.zeros(n, int), np.zeros(n, bool)
        g, k, tt = 0.0, 0, False
        for i in range(n - 1, -1, -1):
            if end[i]:
                g, k, tt = 0.0, 0, bool(term[i] > 0)
            g = rew[i] + GAMMA * g
            rtg[i], to_end[i], term_ahead[i] = g, k, tt
            k += 1
        z = np.abs((obs - obs.mean(0)) / (obs.std(0) + 1e-6)).max(1)
        sat = (np.abs(act) > 0.99).mean(1)
    q_value = jax.jit(agent.q_value)
    q = np.concatenate([np.asarray(q_value(state, jnp.asarray(obs[i:i + 4096]), jnp.asarray(act[i:i + 4096])))
                        for i in range(0, n, 4096)])
    top = np.argsort(q)[-max(1, int(TOP * n)):]

    def describe(idx):
        return {"q_mean": round(float(q[idx].mean()), 1), "rtg_mean": round(float(rtg[idx].mean()), 1),
                "steps_to_end_median": int(np.median(to_end[idx])),
                "episode_ends_in_fall": round(float(term_ahead[idx].mean()), 3),
                "terminal_within_10": round(float((term_ahead[idx] & (to_end[idx] < 10)).mean()), 3),
                "max_abs_z_median": round(float(np.median(z[idx])), 2),
                "action_saturation": round(float(sat[idx].mean()), 3)}

    print(json.dumps({"checkpoint": spec, "rows": n,
                      "q_quantiles_50_90_99_999_max": [round(float(np.quantile(q, p)), 1) for p in (0.5, 0.9, 0.99, 0.999, 1.0)],
                      "rtg_max": round(float(rtg.max()), 1),
                      "rows_with_q_above_2x_rtg_max": int((q > 2 * rtg.max()).sum()),
                      "top": describe(top), "all": describe(np.arange(n))}))
