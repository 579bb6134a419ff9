"""Throughput of the AWAC update step at the paper's sizes.

Run from the repository root::

    python benchmarks/awac_step.py                 # full update, steps/s
    python benchmarks/awac_step.py --component     # + per-part timings

Everything timed is the library's own code (:mod:`mb2po_jax.agents.awac`);
nothing here re-implements a loss. What it does:

1. Measures a float32 matmul peak on this machine in the same process (a
   2048^2 square ``jnp.dot`` and a chain of workload-shaped [B, 256] x [256,
   256] layers, best of N), before and after the AWAC timing, so that a
   contended machine shows up as a drop between the two.
2. Builds the AWAC agent (:func:`mb2po_jax.agents.awac.make_awac`) at the paper's
   sizes (appendix 7.1: batch 1024, 4x256 ReLU, 2 critics x 100 quantiles,
   10-sample advantage, 5-component tanh-GMM) on random synthetic data, and
   times :func:`mb2po_jax.agents.awac.make_train_steps` (one jitted ``lax.scan`` of K
   updates, batch sampling included): compile time separately, then the median
   (and min) over ``--repeats`` calls (``block_until_ready``).
3. Counts the dense-layer matmul FLOPs of one update analytically (listed per
   piece), cross-checks them against XLA's ``cost_analysis()`` of the
   library's own loss gradients (``critic_loss``, ``policy_loss``, and
   ``pessimistic_q`` for the advantage loop's body: XLA counts a loop body
   once, not once per trip), and reports XLA's count for one whole jitted
   update too. Reports achieved GFLOP/s and the fraction of the peak.
4. With ``--component``: times the library's functions one by one, each
   jitted on its own on one batch: ``awac.critic_loss`` and
   ``awac.policy_loss`` (value, and value + gradient as ``update`` takes
   them), ``awac.pessimistic_q`` (one of the advantage baseline's K critic
   calls), ``quantile_huber_loss`` (+ its gradient) on inputs of the critic
   loss's shape, and one ``jax.jit(agent.update)`` call, each with its
   analytic GFLOP/s.

The last line printed is one JSON object with the results. On a shared
machine, other processes inflate the times; ``--wait-idle`` waits for idle
CPUs first, and the JSON records the CPU load and the peak before and after.
For a quick smoke check, shrink the sizes (``--batch-size``,
``--steps-per-call``, ``--repeats``, ``--hidden``, ``--quantiles``, ...).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--steps-per-call", type=int, default=20, help="K: updates per jitted lax.scan call")
    p.add_argument("--repeats", type=int, default=7, help="timed calls (after compilation)")
    p.add_argument("--obs-dim", type=int, default=11, help="default: Hopper")
    p.add_argument("--act-dim", type=int, default=3, help="default: Hopper")
    p.add_argument("--hidden", type=int, nargs="+", default=[256, 256, 256, 256])
    p.add_argument("--quantiles", type=int, default=100)
    p.add_argument("--advantage-samples", type=int, default=10)
    p.add_argument("--advantage-samples-per-call", type=int, default=1,
                   help="awac.advantage_samples_per_call: baseline samples per critic call")
    p.add_argument("--critics", type=int, default=2)
    p.add_argument("--components", type=int, default=5, help="GMM components")
    p.add_argument("--loss-chunk-size", type=int, default=None,
                   help="override AWACConfig.loss_chunk_size (speed only; 0 = no chunking)")
    p.add_argument("--dataset-size", type=int, default=100_000)
    p.add_argument("--peak-size", type=int, default=2048, help="square matmul size for the peak")
    p.add_argument("--peak-repeats", type=int, default=10)
    p.add_argument("--component", action="store_true", help="also time the library's losses one by one")
    p.add_argument("--component-repeats", type=int, default=15)
    p.add_argument("--xla-flags", default="",
                   help="appended to $XLA_FLAGS before JAX starts, e.g. "
                        "'--xla_cpu_experimental_ynn_fusion_type=' (see docs/benchmarks.md)")
    p.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                   help="on a shared machine, wait up to SECONDS for idle CPUs "
                        "(< 10%% busy for 2 s) before the matmul peak and the timing")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


if __name__ == "__main__":
    _ARGS = parse_args()
    if _ARGS.xla_flags:  # XLA reads its flags when the backend starts: before importing jax.
        os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + _ARGS.xla_flags).strip()

# Runnable as `python benchmarks/awac_step.py` without installing the package.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from _bench import (  # noqa: E402
    layer_chain_peak, load_average, machine_info, matmul_peak, mlp_backward_flops,
    mlp_forward_flops, mlp_layer_dims, time_calls,
)
from mb2po_jax.agents import awac  # noqa: E402
from mb2po_jax.quantile_loss import quantile_huber_loss  # noqa: E402
from mb2po_jax.transitions import Transitions, sample_batch  # noqa: E402


# --------------------------------------------------------------------------
# Shared-machine helpers
# --------------------------------------------------------------------------


def cpu_busy_fraction(seconds: float = 0.5) -> float:
    """Fraction of all CPUs busy over `seconds` (/proc/stat; nan if unavailable)."""

    def read():
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        return values[3] + values[4], sum(values)  # idle + iowait, total

    try:
        idle0, total0 = read()
        time.sleep(seconds)
        idle1, total1 = read()
    except OSError:
        return float("nan")
    return 1.0 - (idle1 - idle0) / max(1, total1 - total0)


def wait_idle(timeout: float, threshold: float = 0.1, consecutive: int = 4) -> float:
    """Waits (up to `timeout` s) for `consecutive` half-seconds under `threshold` busy."""
    start, ok = time.time(), 0
    while ok < consecutive and time.time() - start < timeout:
        ok = ok + 1 if cpu_busy_fraction() < threshold else 0
    return time.time() - start


# --------------------------------------------------------------------------
# FLOP counts
# --------------------------------------------------------------------------


def analytic_flops(obs_dim, act_dim, cfg: awac.AWACConfig, batch: int) -> dict:
    """Dense-layer matmul FLOPs of one AWAC update, by piece (2mkn per layer
    forward; dW for every layer + dX for all but the first backward), and
    per library function (``parts``)."""
    hidden = tuple(cfg.hidden_dims)
    m = cfg.num_critics
    critic_layers = mlp_layer_dims(obs_dim + act_dim, hidden, cfg.num_quantiles)
    policy_layers = mlp_layer_dims(obs_dim, hidden, cfg.num_components * (1 + 2 * act_dim))
    c_fwd = m * mlp_forward_flops(batch, critic_layers)  # all members
    c_bwd = m * mlp_backward_flops(batch, critic_layers)
    p_fwd = mlp_forward_flops(batch, policy_layers)
    p_bwd = mlp_backward_flops(batch, policy_layers)
    k = cfg.num_advantage_samples
    pieces = {
        "policy fwd at s' (a' ~ pi(.|s'))": p_fwd,
        "online critics fwd at (s',a')": c_fwd,
        "target critics fwd at (s',a')": c_fwd,
        "critics fwd at (s,a)": c_fwd,
        "critics bwd at (s,a)": c_bwd,
        "policy fwd at s": p_fwd,
        "policy bwd at s": p_bwd,
        f"advantage: critics fwd at (s,a_j), {k} samples": k * c_fwd,
    }
    # The same pieces, grouped by the library function that computes them
    # (critic_loss: the first five; policy_loss: the last three).
    parts = {
        "critic_loss": p_fwd + 3 * c_fwd,
        "critic_loss_grad": p_fwd + 3 * c_fwd + c_bwd,
        "policy_loss": p_fwd + k * c_fwd,
        "policy_loss_grad": p_fwd + p_bwd + k * c_fwd,
        "pessimistic_q": c_fwd,
        "quantile_huber_loss_grad": 0,
        "update": sum(pieces.values()),
    }
    assert abs(parts["critic_loss_grad"] + parts["policy_loss_grad"] - parts["update"]) < 1.0, "bookkeeping"
    return {
        "pieces": pieces,
        "total": parts["update"],
        "parts": parts,
        "quantile_huber_pairs": m * batch * cfg.num_quantiles * cfg.num_quantiles,
    }


def xla_flops(compiled) -> float | None:
    """XLA's cost_analysis() flops of a compiled function (None if unavailable)."""
    try:
        cost = compiled.cost_analysis()
    except Exception:  # noqa: BLE001 - not every backend implements it
        return None
    if isinstance(cost, (list, tuple)):
        cost = cost[0] if cost else None
    if not cost or "flops" not in cost:
        return None
    return float(cost["flops"])


# --------------------------------------------------------------------------
# The library's functions, jitted one by one on one batch
# --------------------------------------------------------------------------


def library_functions(agent: awac.AWAC, state: awac.AWACState, batch: Transitions, key: jax.Array):
    """name -> (jitted library function, its arguments, key into analytic
    ``parts``). Keys are split as ``update`` splits them; the policy loss gets
    the q_data the critic loss returns, as in ``update``."""
    nets = awac.Networks(agent.config, agent.policy, agent.critic)
    cfg = agent.config
    critic_loss = functools.partial(awac.critic_loss, nets=nets)
    policy_loss = functools.partial(awac.policy_loss, nets=nets)
    critic_key, policy_key = jax.random.split(key)
    critic_args = (state.critic_params, state, batch, critic_key)
    critic_fn = jax.jit(critic_loss)
    _, (q_data, _) = critic_fn(*critic_args)
    policy_args = (state.policy_params, state, batch, q_data, policy_key)
    m, b, n = cfg.num_critics, batch.rewards.shape[0], cfg.num_quantiles
    # The quantile-Huber loss on inputs of the critic loss's shape (random
    # values; the loss's cost does not depend on them).
    pred = jax.random.normal(jax.random.PRNGKey(4), (m * b, n), jnp.float32)
    target = jax.random.normal(jax.random.PRNGKey(5), (m * b, n), jnp.float32)
    qloss_grad = jax.value_and_grad(lambda p, t: jnp.sum(
        quantile_huber_loss(p, t, cfg.huber_kappa, cfg.loss_chunk_size)))
    k = cfg.num_advantage_samples
    return {
        "awac.critic_loss: pi(s') sample, 2x critics at (s',a'), critics at (s,a), quantile-Huber": (
            critic_fn, critic_args, "critic_loss"),
        "awac.critic_loss value+grad (as update takes it)": (
            jax.jit(jax.value_and_grad(critic_loss, has_aux=True)), critic_args, "critic_loss_grad"),
        f"quantile_huber_loss value+grad [{m * b},{n}] x [{n}] (inside critic_loss)": (
            jax.jit(qloss_grad), (pred, target), "quantile_huber_loss_grad"),
        f"awac.policy_loss: pi(s), {k}-sample advantage baseline, log_prob": (
            jax.jit(policy_loss), policy_args, "policy_loss"),
        "awac.policy_loss value+grad (as update takes it)": (
            jax.jit(jax.value_and_grad(policy_loss, has_aux=True)), policy_args, "policy_loss_grad"),
        f"awac.pessimistic_q at (s,a): 1 of the baseline's {k} critic calls": (
            jax.jit(functools.partial(awac.pessimistic_q, nets)),
            (state.critic_params, batch.observations, batch.actions), "pessimistic_q"),
        "agent.update: one jax.jit(agent.update) call (both losses, 2x Adam, targets)": (
            jax.jit(agent.update), (state, batch, key), "update"),
    }


def xla_library_flops(functions: dict, num_advantage_samples: int) -> dict | None:
    """XLA's cost_analysis() of the library's two loss gradients and of
    pessimistic_q, and their sum with the advantage loop multiplied out:
    policy_loss's ``lax.map`` body (one pessimistic_q call) is counted once
    by XLA, so (K - 1) pessimistic_q calls are added. XLA also counts
    elementwise work (bias, ReLU, Pohlen's transform, GMM, the quantile loss's
    loop body once)."""
    out = {}
    for fn, args, part in functions.values():
        if part in ("critic_loss_grad", "policy_loss_grad", "pessimistic_q"):
            flops = xla_flops(fn.lower(*args).compile())
            if flops is None:
                return None
            out[part] = flops
    out["update_loop_multiplied_out"] = (out["critic_loss_grad"] + out["policy_loss_grad"]
                                         + (num_advantage_samples - 1) * out["pessimistic_q"])
    return out


def time_components(functions: dict, flops: dict, peak: float, repeats: int) -> dict[str, dict]:
    results = {}
    for name, (fn, args, part) in functions.items():
        jax.block_until_ready(fn(*args))
        times = time_calls(fn, args, repeats)
        median = statistics.median(times)
        gflops = flops["parts"][part] / median / 1e9 if flops["parts"][part] else None
        results[name] = {"median_ms": round(1e3 * median, 3), "min_ms": round(1e3 * min(times), 3),
                         "analytic_gflop": round(flops["parts"][part] / 1e9, 4),
                         "achieved_gflops": None if gflops is None else round(gflops, 2)}
        rate = "" if gflops is None else f", {gflops:6.1f} GFLOP/s ({gflops / peak:4.0%} of peak)"
        print(f"  {name:<88s} {1e3 * median:8.2f} ms median, {1e3 * min(times):8.2f} min{rate}")
    return results


# --------------------------------------------------------------------------
# Synthetic data
# --------------------------------------------------------------------------


def synthetic_dataset(key, size: int, obs_dim: int, act_dim: int) -> Transitions:
    ks = jax.random.split(key, 5)
    return Transitions(
        observations=jax.random.normal(ks[0], (size, obs_dim), jnp.float32),
        actions=jax.random.uniform(ks[1], (size, act_dim), jnp.float32, -1.0, 1.0),
        rewards=jax.random.normal(ks[2], (size,), jnp.float32),
        next_observations=jax.random.normal(ks[3], (size, obs_dim), jnp.float32),
        terminals=(jax.random.uniform(ks[4], (size,)) < 0.01).astype(jnp.float32),
        timeouts=jnp.zeros((size,), jnp.float32),
    )


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------


def main(args) -> dict:
    info = {**machine_info(), "num_devices": jax.device_count(),
            "xla_flags": os.environ.get("XLA_FLAGS", "")}
    print("machine: " + ", ".join(f"{k}={v}" for k, v in info.items()))

    waited = wait_idle(args.wait_idle) if args.wait_idle > 0 else 0.0
    busy_start = cpu_busy_fraction()
    print(f"CPU busy before start (other processes): {busy_start:.0%}"
          + (f" (waited {waited:.0f} s for idle)" if args.wait_idle > 0 else ""))

    # ---- matmul peak (before) ----
    peak_before = matmul_peak(args.peak_size, args.peak_repeats)
    layer_before = layer_chain_peak(args.batch_size, args.hidden[0], 20, args.peak_repeats)
    print(f"matmul peak: {peak_before:.1f} GFLOP/s ({args.peak_size}^2 dot, best of {args.peak_repeats}); "
          f"workload-shaped layer chain [{args.batch_size},{args.hidden[0]}]x[{args.hidden[0]},"
          f"{args.hidden[0]}]: {layer_before:.1f} GFLOP/s")

    # ---- agent ----
    overrides = {}
    if args.loss_chunk_size is not None:
        overrides["loss_chunk_size"] = args.loss_chunk_size or None
    cfg = awac.AWACConfig(
        hidden_dims=tuple(args.hidden),
        num_critics=args.critics,
        num_quantiles=args.quantiles,
        num_advantage_samples=args.advantage_samples,
        advantage_samples_per_call=args.advantage_samples_per_call,
        num_components=args.components,
        **overrides,
    )
    agent = awac.make_awac(args.obs_dim, args.act_dim, cfg)
    key = jax.random.PRNGKey(args.seed)
    init_key, data_key, run_key = jax.random.split(key, 3)
    state = agent.init(init_key)
    dataset = synthetic_dataset(data_key, args.dataset_size, args.obs_dim, args.act_dim)
    print(f"config: batch={args.batch_size} hidden={cfg.hidden_dims} critics={cfg.num_critics} "
          f"quantiles={cfg.num_quantiles} advantage_samples={cfg.num_advantage_samples} "
          f"gmm_components={cfg.num_components} loss_chunk_size={cfg.loss_chunk_size} "
          f"steps_per_call={args.steps_per_call}")

    # ---- FLOPs ----
    flops = analytic_flops(args.obs_dim, args.act_dim, cfg, args.batch_size)
    print("analytic dense-layer matmul FLOPs per update:")
    for name, f in flops["pieces"].items():
        print(f"  {name:<48s} {f / 1e9:7.3f} GFLOP")
    print(f"  {'total':<48s} {flops['total'] / 1e9:7.3f} GFLOP")
    print(f"  non-matmul: quantile-Huber {flops['quantile_huber_pairs'] / 1e6:.1f} M pairs "
          "(~12 elementwise ops each, loss and analytic gradient)")

    batch = sample_batch(dataset, data_key, args.batch_size)
    functions = library_functions(agent, state, batch, run_key)
    xla_parts = xla_library_flops(functions, cfg.num_advantage_samples)
    xla_library_total = None
    if xla_parts is not None:
        xla_library_total = xla_parts["update_loop_multiplied_out"]
        print(f"XLA cost_analysis of the library's critic_loss and policy_loss gradients, + "
              f"{cfg.num_advantage_samples - 1} pessimistic_q calls for the advantage loop: "
              f"{xla_library_total / 1e9:.3f} GFLOP ({xla_library_total / flops['total'] - 1:+.1%} "
              "vs analytic; XLA adds bias/ReLU/transform/GMM work)")
    xla_update = xla_flops(jax.jit(agent.update).lower(state, batch, run_key).compile())
    if xla_update is not None:
        body_once = flops["total"] - (cfg.num_advantage_samples - 1) * flops["parts"]["pessimistic_q"]
        print(f"XLA cost_analysis of one whole jitted update: {xla_update / 1e9:.3f} GFLOP. XLA counts "
              f"a loop body once, so the {cfg.num_advantage_samples}-sample lax.map counts as 1 critic "
              f"call: analytic total - {cfg.num_advantage_samples - 1} critic fwds = "
              f"{body_once / 1e9:.3f} GFLOP (+ non-matmul)")

    # ---- compile the K-step scan ----
    train_steps = awac.make_train_steps(agent.update, args.batch_size, args.steps_per_call)
    t0 = time.perf_counter()
    compiled = train_steps.lower(state, dataset, run_key).compile()
    compile_s = time.perf_counter() - t0
    # The first execution can still carry one-off costs (allocations); not timed.
    t0 = time.perf_counter()
    state, metrics = jax.block_until_ready(compiled(state, dataset, run_key))
    first_call_s = time.perf_counter() - t0
    print(f"compile: {compile_s:.2f} s; first call {first_call_s:.2f} s")
    if not all(np.isfinite(float(v)) for v in metrics.values()):
        print("WARNING: non-finite metrics", {k: float(v) for k, v in metrics.items()})

    # ---- timed calls ----
    if args.wait_idle > 0:
        waited += wait_idle(args.wait_idle)
    load_before = load_average()
    call_times = []
    for i in range(args.repeats):
        call_key = jax.random.fold_in(run_key, i + 1)
        t0 = time.perf_counter()
        state, metrics = jax.block_until_ready(compiled(state, dataset, call_key))
        call_times.append(time.perf_counter() - t0)
    load_after = load_average()
    per_step = [1e3 * t / args.steps_per_call for t in call_times]
    ms_per_step = statistics.median(per_step)
    steps_per_s = 1e3 / ms_per_step
    stdev = statistics.stdev(per_step) if len(per_step) > 1 else 0.0
    print(f"update: {ms_per_step:.2f} ms/step median over {args.repeats} calls of {args.steps_per_call} "
          f"steps (min {min(per_step):.2f}, max {max(per_step):.2f}, stdev {stdev:.2f}) -> "
          f"{steps_per_s:.2f} steps/s (best call {1e3 / min(per_step):.2f})")
    print(f"load average before/after timing: {load_before} / {load_after}")

    # ---- matmul peak (after) ----
    peak_after = matmul_peak(args.peak_size, args.peak_repeats)
    layer_after = layer_chain_peak(args.batch_size, args.hidden[0], 20, args.peak_repeats)
    busy_end = cpu_busy_fraction()
    peak = max(peak_before, peak_after)
    layer_peak = max(layer_before, layer_after)
    achieved = flops["total"] / (ms_per_step / 1e3) / 1e9
    print(f"matmul peak after: {peak_after:.1f} GFLOP/s; layer chain after: {layer_after:.1f} GFLOP/s; "
          f"CPU busy after (other processes): {busy_end:.0%}")
    if min(peak_before, peak_after) < 0.8 * peak:
        print("NOTE: the peak dropped by > 20% between before and after: the machine was contended; "
              "rerun (e.g. with --wait-idle 600) for clean figures")
    print(f"achieved (analytic matmul FLOPs / median step time): {achieved:.1f} GFLOP/s = "
          f"{achieved / peak:.1%} of the {args.peak_size}^2 matmul peak, "
          f"{achieved / layer_peak:.1%} of the workload-shaped layer peak")
    print(f"matmul-only floor: {flops['total'] / peak / 1e6:.1f} ms/step at the {args.peak_size}^2 peak "
          f"({peak * 1e9 / flops['total']:.1f} steps/s); {flops['total'] / layer_peak / 1e6:.1f} ms/step "
          f"at the layer peak ({layer_peak * 1e9 / flops['total']:.1f} steps/s)")

    components = None
    if args.component:
        # On the state and batch the FLOP cross-check used (the initial state).
        print(f"library functions (each jitted on its own, batch {args.batch_size}, "
              f"{args.component_repeats} calls):")
        components = time_components(functions, flops, peak, args.component_repeats)

    r = lambda x, n=3: None if x is None else round(x, n)  # noqa: E731
    result = {
        "benchmark": "awac_step",
        "steps_per_s": r(steps_per_s),
        "ms_per_step": r(ms_per_step),
        "steps_per_s_best_call": r(1e3 / min(per_step)),
        "ms_per_step_min": r(min(per_step)),
        "ms_per_step_max": r(max(per_step)),
        "ms_per_step_stdev": r(stdev),
        "ms_per_step_all": [r(x, 2) for x in per_step],
        "compile_s": r(compile_s),
        "first_call_s": r(first_call_s),
        "model_gflop_per_step": r(flops["total"] / 1e9, 4),
        "model_gflop_pieces": {k: r(v / 1e9, 4) for k, v in flops["pieces"].items()},
        "xla_gflop_library_losses": r(None if xla_library_total is None else xla_library_total / 1e9, 4),
        "xla_gflop_whole_update_loop_bodies_once": r(None if xla_update is None else xla_update / 1e9, 4),
        "quantile_huber_pairs_per_step": flops["quantile_huber_pairs"],
        "achieved_gflops": r(achieved, 2),
        "matmul_peak_gflops": r(peak, 2),
        "matmul_peak_gflops_before_after": [r(peak_before, 2), r(peak_after, 2)],
        "layer_chain_peak_gflops": r(layer_peak, 2),
        "layer_chain_peak_gflops_before_after": [r(layer_before, 2), r(layer_after, 2)],
        "fraction_of_peak": r(achieved / peak, 4),
        "fraction_of_layer_peak": r(achieved / layer_peak, 4),
        "matmul_floor_ms_per_step": r(flops["total"] / peak / 1e6),
        "batch_size": args.batch_size,
        "steps_per_call": args.steps_per_call,
        "repeats": args.repeats,
        "hidden": list(cfg.hidden_dims),
        "critics": cfg.num_critics,
        "quantiles": cfg.num_quantiles,
        "advantage_samples": cfg.num_advantage_samples,
        "advantage_samples_per_call": cfg.advantage_samples_per_call,
        "gmm_components": cfg.num_components,
        "loss_chunk_size": cfg.loss_chunk_size,
        "obs_dim": args.obs_dim,
        "act_dim": args.act_dim,
        "cpu_busy_other_before_after": [r(busy_start, 2), r(busy_end, 2)],
        "waited_for_idle_s": r(waited, 1),
        "load_average_before_after_timing": [load_before, load_after],
        "components_ms": components,
        **info,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main(_ARGS)
