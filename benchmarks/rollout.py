"""Conservative-rollout and MB2PO-iteration speed at the paper's sizes.

    python benchmarks/rollout.py                       # every case, one subprocess each
    python benchmarks/rollout.py --case hopper 1000000 5
    python benchmarks/rollout.py --iteration hopper    # one whole MB2PO iteration

A case is (env sizes, samples, h): 5 dynamics members of 4x200 swish, the
4x256 tanh-GMM policy, B = samples / h start states, h scanned steps, rows in
blocks of ``--block-size``. Reported per case: samples/s, achieved GFLOP/s
(analytic matmul FLOPs of the policy and ensemble forwards), its fraction of a
float32 matmul peak measured in the same process, compile time, and the peak
working memory of the run (RSS sampled during the timed calls, minus the RSS
before them: the rollout's output, 1M x (2 obs + act + 3) floats, included).
Each case prints one JSON line; each runs in its own subprocess so its
memory figure is its own. Parameters are random: speed does not depend on
their values (terminated rows are masked, not skipped).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _bench import (  # noqa: E402
    PeakRSS, current_rss_bytes, layer_chain_peak, machine_info, matmul_peak,
    mlp_forward_flops, mlp_layer_dims, time_calls,
)
from mb2po_jax import mb2po, networks  # noqa: E402
from mb2po_jax.model import buffer, dynamics, rollout  # noqa: E402
from mb2po_jax.agents import awac  # noqa: E402
from mb2po_jax.transitions import Transitions  # noqa: E402
from mb2po_jax.envs import get_termination_fn  # noqa: E402

ENVS = {"hopper": (11, 3), "walker2d": (17, 6), "halfcheetah": (17, 6)}
CASES = [(env, samples, h) for env in ("hopper", "walker2d")
         for samples in (100_000, 1_000_000) for h in (1, 5)]


def rollout_flops_per_row(obs_dim: int, act_dim: int, members: int = 5) -> int:
    """Matmul FLOPs of one conservative-MDP step for one row."""
    policy = mlp_layer_dims(obs_dim, (256,) * 4, 5 * (1 + 2 * act_dim))
    model = mlp_layer_dims(obs_dim + act_dim, (200,) * 4, 2 * (obs_dim + 1))
    return mlp_forward_flops(1, policy) + members * mlp_forward_flops(1, model)


def _models(obs_dim: int, act_dim: int, key):
    dyn = dynamics.make_dynamics(obs_dim, act_dim)  # paper sizes: 5 x 4x200
    pool = jax.random.normal(key, (100_000, obs_dim))
    actions = jnp.zeros((100_000, act_dim))
    dyn_state = dyn.init(jax.random.PRNGKey(1), dynamics.DynamicsData(
        jnp.concatenate([pool, actions], -1), jnp.zeros((100_000, obs_dim + 1))))
    policy = networks.TanhGMMPolicy(action_dim=act_dim)
    policy_params = policy.init(jax.random.PRNGKey(2), pool[:1])
    return dyn, dyn_state, policy, policy_params, pool


def run_case(env: str, samples: int, horizon: int, block_size: int, repeats: int) -> dict:
    obs_dim, act_dim = ENVS[env]
    dyn, dyn_state, policy, policy_params, pool = _models(obs_dim, act_dim, jax.random.PRNGKey(0))
    step = rollout.make_model_step(dyn, functools.partial(networks.sample_per_row, policy),
                                   get_termination_fn(env), penalty_coef=1.0,
                                   block_size=block_size)
    fn = jax.jit(rollout.make_rollout(step, horizon=horizon, num_samples=samples))
    args = (dyn_state, policy_params, pool, jax.random.PRNGKey(3))
    t0 = time.perf_counter()
    compiled = fn.lower(*args).compile()
    compile_s = time.perf_counter() - t0
    jax.block_until_ready(compiled(*args))  # warm-up
    peak_gflops = max(matmul_peak(2048, 5), layer_chain_peak(block_size, 256, 8, 5))
    before = current_rss_bytes()
    with PeakRSS() as rss:
        times = time_calls(compiled, args, repeats)
    seconds = statistics.median(times)
    gflop = rollout_flops_per_row(obs_dim, act_dim) * samples / 1e9
    return {
        "benchmark": "rollout", "env": env, "samples": samples, "horizon": horizon,
        "block_size": block_size, "seconds_median": seconds, "seconds_all": times,
        "samples_per_s": samples / seconds, "compile_s": compile_s,
        "model_gflop": gflop, "achieved_gflops": gflop / seconds,
        "matmul_peak_gflops": peak_gflops, "fraction_of_peak": gflop / seconds / peak_gflops,
        "working_memory_gib": (rss.peak - before) / 2**30, "rss_peak_gib": rss.peak / 2**30,
        **machine_info(),
    }


def run_iteration(env: str, samples: int, horizon: int, updates: int, batch: int,
                  buffer_iterations: int, block_size: int, repeats: int) -> dict:
    """One whole MB2PO iteration: rollout + insert + ``updates`` AWAC steps."""
    obs_dim, act_dim = ENVS[env]
    dyn, dyn_state, _, _, pool = _models(obs_dim, act_dim, jax.random.PRNGKey(0))
    agent = awac.make_awac(obs_dim, act_dim)
    step = rollout.make_model_step(dyn, agent.sample_action, get_termination_fn(env), penalty_coef=1.0,
                                   block_size=block_size)
    roll = rollout.make_rollout(step, horizon=horizon, num_samples=samples)
    iteration = mb2po.make_iteration(agent, roll, batch_size=batch, omega=0.01,
                                     num_updates=updates)
    n = pool.shape[0]
    dataset = Transitions(pool, jnp.zeros((n, act_dim)), jnp.zeros(n), pool, jnp.zeros(n), jnp.zeros(n))
    state = agent.init(jax.random.PRNGKey(4))
    buf = buffer.init_buffer(buffer_iterations, samples, obs_dim, act_dim)
    t0 = time.perf_counter()
    state, buf, metrics = iteration(state, buf, dyn_state, dataset, jax.random.PRNGKey(5))
    jax.block_until_ready(metrics)
    first_s = time.perf_counter() - t0
    times = []
    for i in range(repeats):
        t0 = time.perf_counter()
        state, buf, metrics = iteration(state, buf, dyn_state, dataset, jax.random.PRNGKey(6 + i))
        jax.block_until_ready(metrics)
        times.append(time.perf_counter() - t0)
    return {
        "benchmark": "mb2po_iteration", "env": env, "samples": samples, "horizon": horizon,
        "updates": updates, "batch_size": batch, "buffer_iterations": buffer_iterations,
        "seconds_median": statistics.median(times), "seconds_all": times,
        "first_call_s_incl_compile": first_s, **machine_info(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", nargs=3, metavar=("ENV", "SAMPLES", "H"))
    parser.add_argument("--iteration", metavar="ENV", choices=sorted(ENVS))
    parser.add_argument("--samples", type=int, default=1_000_000, help="--iteration rollout samples")
    parser.add_argument("--horizon", type=int, default=1, help="--iteration h")
    parser.add_argument("--updates", type=int, default=1000, help="--iteration AWAC updates")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--buffer-iterations", type=int, default=2,
                        help="--iteration K (the paper's 100 needs ~11 GB for hopper)")
    parser.add_argument("--block-size", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.case:
        env, samples, horizon = args.case[0], int(args.case[1]), int(args.case[2])
        print(json.dumps(run_case(env, samples, horizon, args.block_size, args.repeats)))
    elif args.iteration:
        print(json.dumps(run_iteration(args.iteration, args.samples, args.horizon, args.updates,
                                       args.batch_size, args.buffer_iterations, args.block_size,
                                       args.repeats)))
    else:
        for env, samples, horizon in CASES:
            done = subprocess.run(
                [sys.executable, __file__, "--case", env, str(samples), str(horizon),
                 "--block-size", str(args.block_size), "--repeats", str(args.repeats)],
                capture_output=True, text=True, check=True)
            print(done.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
