"""N seeds in one program vs one: AWAC update throughput.

Run from the repository root::

    python benchmarks/seeds.py                               # paper sizes, 4 seeds vs 1
    python benchmarks/seeds.py --batch-size 256 --num-seeds 3  # the CPU scale's batch

Times the library's own code: :func:`mb2po_jax.agents.awac.make_train_steps`
(one jitted ``lax.scan`` of K updates) for one seed, and the same function
over N seeds by :func:`mb2po_jax.seeds.over_seeds` (``--batching``:
``jax.vmap`` or ``lax.map``; the dataset shared), exactly as ``--config.num_seeds=N`` runs it. The two are timed in
alternation (median of ``--repeats`` calls each), so a machine whose load
changes during the run affects both alike. Reports updates per second per
seed and in all, the throughput ratio ``N-seed updates/s / 1-seed updates/s``
(1: the N seeds cost as much as N single runs; N: as much as one), the
achieved GFLOP/s of both (analytic dense-layer FLOPs of
``benchmarks/awac_step.py``) and their fraction of a matmul peak measured in
the same process. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402

from _bench import machine_info, matmul_peak  # noqa: E402
from awac_step import analytic_flops, synthetic_dataset  # noqa: E402
from mb2po_jax import seeds  # noqa: E402
from mb2po_jax.agents import awac  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--num-seeds", type=int, default=4)
    p.add_argument("--batching", default="vmap", choices=["vmap", "map"],
                   help="seed_batching: jax.vmap, or lax.map over the seeds")
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--steps-per-call", type=int, default=20, help="K: updates per call")
    p.add_argument("--repeats", type=int, default=5, help="timed calls of each, alternating")
    p.add_argument("--obs-dim", type=int, default=11, help="default: Hopper")
    p.add_argument("--act-dim", type=int, default=3, help="default: Hopper")
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256, 256, 256])
    p.add_argument("--quantiles", type=int, default=100)
    p.add_argument("--advantage-samples", type=int, default=10)
    p.add_argument("--dataset-size", type=int, default=200_000)
    p.add_argument("--peak-size", type=int, default=2048)
    p.add_argument("--peak-repeats", type=int, default=10)
    return p.parse_args(argv)


def main(args) -> dict:
    n = args.num_seeds
    cfg = awac.AWACConfig(hidden_dims=tuple(args.hidden), num_quantiles=args.quantiles,
                          num_advantage_samples=args.advantage_samples)
    agent = awac.make_awac(args.obs_dim, args.act_dim, cfg)
    data = synthetic_dataset(jax.random.PRNGKey(0), args.dataset_size, args.obs_dim,
                             args.act_dim)
    one = awac.make_train_steps(agent.update, args.batch_size, args.steps_per_call)
    many = seeds.over_seeds(one, (0, None, 0), batching=args.batching)
    keys = seeds.stream_keys(range(n), 0)
    state_one = agent.init(keys[0])
    state_many = seeds.over_seeds(agent.init, (0,))(keys)

    peak_before = matmul_peak(args.peak_size, args.peak_repeats)
    compile_s = {}
    for name, fn, state, key in (("one", one, state_one, keys[0]), ("many", many, state_many, keys)):
        start = time.perf_counter()
        jax.block_until_ready(fn(state, data, key))
        compile_s[name] = time.perf_counter() - start
    times = {"one": [], "many": []}
    for _ in range(args.repeats):
        for name, fn, state, key in (("one", one, state_one, keys[0]),
                                     ("many", many, state_many, keys)):
            start = time.perf_counter()
            jax.block_until_ready(fn(state, data, key))
            times[name].append(time.perf_counter() - start)
    peak_after = matmul_peak(args.peak_size, args.peak_repeats)
    peak = max(peak_before, peak_after)

    flops = analytic_flops(args.obs_dim, args.act_dim, cfg, args.batch_size)["total"]
    k = args.steps_per_call
    median = {name: statistics.median(values) for name, values in times.items()}
    rate = {"one": k / median["one"], "many": n * k / median["many"]}
    gflops = {name: rate[name] * flops / 1e9 for name in rate}
    return {
        "benchmark": "seeds",
        "device": str(jax.devices()[0]),
        "devices": len(jax.devices()),
        "jax": jax.__version__,
        "num_seeds": n,
        "batching": args.batching,
        "batch_size": args.batch_size,
        "steps_per_call": k,
        "compile_s": {name: round(v, 2) for name, v in compile_s.items()},
        "call_s_median": {name: round(v, 4) for name, v in median.items()},
        "updates_per_s_one_seed": round(rate["one"], 2),
        "updates_per_s_all_seeds": round(rate["many"], 2),
        "updates_per_s_per_seed": round(rate["many"] / n, 2),
        "throughput_ratio": round(rate["many"] / rate["one"], 3),
        "time_vs_n_single_runs": round(median["many"] / (n * median["one"]), 3),
        "gflops_per_update": round(flops / 1e9, 3),
        "achieved_gflops": {name: round(v, 1) for name, v in gflops.items()},
        "matmul_peak_gflops": {"before": round(peak_before, 1), "after": round(peak_after, 1)},
        "fraction_of_peak": {name: round(v / peak, 3) for name, v in gflops.items()},
        "machine": machine_info(),
    }


if __name__ == "__main__":
    result = main(parse_args())
    print(f"{result['num_seeds']} vmapped seeds: {result['updates_per_s_all_seeds']} updates/s "
          f"in all vs {result['updates_per_s_one_seed']} for one seed "
          f"(ratio {result['throughput_ratio']}; time {result['time_vs_n_single_runs']} x "
          f"N single runs)")
    print(json.dumps(result))
