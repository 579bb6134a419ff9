"""What the checkpoint diagnostics share: their checkpoints, restorable start
states from the dataset, and playing real envs to the fall."""
import gymnasium as gym
import numpy as np
from mb2po_jax.pipeline import Settings, prepare_dataset
from mb2po_jax.pipeline import restore_policy
from mb2po_jax.model.simulator_check import SimulatorProbe


def checkpoints(specs):
    """Yields ``(spec, agent, state, config, meta)`` for each WORKDIR:PHASE:STEP."""
    for spec in specs:
        workdir, phase, step = spec.split(":")
        agent, state, config, meta, _, _ = restore_policy(workdir, phase=phase, step=int(step))
        yield spec, agent, state, config, meta


def restorable_starts(config, meta, n):
    """``(probe, starts [n, obs_dim])``: n dataset observations (rng 0) whose
    observation holds the whole state."""
    data = prepare_dataset(Settings.from_config(config).data)
    probe = SimulatorProbe(meta["env_id"], meta["dataset"]["obs_dim"])
    obs_all = np.asarray(data.transitions.observations)
    ok = np.flatnonzero(probe.restorable(obs_all))
    return probe, obs_all[np.random.default_rng(0).choice(ok, n, replace=False)]


def make_envs(env_id, n):
    envs = [gym.make(env_id).unwrapped for _ in range(n)]
    for e in envs:
        e.reset(seed=0)
    return envs


def play(envs, probe, starts, act, steps, gamma):
    """Restores env i to ``starts[i]``, then steps every env with
    ``act(t, obs [n, obs_dim]) -> actions [n, act_dim]`` until ``steps`` or
    its fall. Returns (discounted return, still standing, steps taken), each [n]."""
    n = len(envs)
    for e, o in zip(envs, starts):
        probe.restore(e, o)
    obs = np.array(starts, np.float32)
    ret, disc, alive, length = np.zeros(n), np.ones(n), np.ones(n, bool), np.zeros(n)
    for t in range(steps):
        a = act(t, obs)
        for i, e in enumerate(envs):
            if not alive[i]:
                continue
            o, r, term, _, _ = e.step(a[i])
            ret[i] += disc[i] * r; disc[i] *= gamma; length[i] += 1
            obs[i] = o
            if term:
                alive[i] = False
        if not alive.any():
            break
    return ret, alive, length
