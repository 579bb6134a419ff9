"""Throughput of the AWAC update step at the paper's sizes.

Run from the repository root::

    python benchmarks/awac_step.py                 # full update, steps/s
    python benchmarks/awac_step.py --component     # + per-component timings

What it does:

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
   piece), cross-checks them against XLA's ``cost_analysis()`` of the same
   network calls compiled separately, and reports XLA's count for one whole
   jitted update too (XLA counts a loop body once, not once per trip: see the
   printed note). Reports achieved GFLOP/s and the fraction of the peak.
4. With ``--component``: times the pieces of the update separately (critic
   target, critic network forward/backward, quantile-Huber loss, full critic
   loss+grad, advantage baseline, policy loss+grad, optimiser steps). The
   pieces are rebuilt here from the library's public functions, mirroring
   ``awac.make_awac``'s losses.

The last line printed is one JSON object with the results. On a shared
machine, other processes inflate the times; ``--wait-idle`` waits for idle
CPUs first, and the JSON records the CPU load and the peak before and after.
"""

from __future__ import annotations

import argparse
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
    p.add_argument("--critics", type=int, default=2)
    p.add_argument("--components", type=int, default=5, help="GMM components")
    p.add_argument("--loss-chunk-size", type=int, default=None,
                   help="override AWACConfig.loss_chunk_size (speed only; 0 = no chunking)")
    p.add_argument("--dataset-size", type=int, default=100_000)
    p.add_argument("--peak-size", type=int, default=2048, help="square matmul size for the peak")
    p.add_argument("--peak-repeats", type=int, default=10)
    p.add_argument("--component", action="store_true", help="also time the update's pieces")
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
import optax  # noqa: E402

from _bench import (  # noqa: E402
    layer_chain_peak, load_average, machine_info, matmul_peak, mlp_backward_flops,
    mlp_forward_flops, mlp_layer_dims, time_calls,
)
from mb2po_jax import networks  # noqa: E402
from mb2po_jax.agents import awac  # noqa: E402
from mb2po_jax.transitions import Transitions, sample_batch  # noqa: E402
from mb2po_jax.quantile_loss import quantile_huber_loss  # noqa: E402


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
    forward; dW for every layer + dX for all but the first backward)."""
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
    return {
        "pieces": pieces,
        "total": sum(pieces.values()),
        "parts": {"critic_fwd": c_fwd, "critic_fwd_bwd": c_fwd + c_bwd,
                  "policy_fwd": p_fwd, "policy_fwd_bwd": p_fwd + p_bwd},
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


def xla_network_flops(agent: awac.AWAC, state: awac.AWACState, batch: Transitions) -> dict | None:
    """XLA's flop count of the network calls the analytic count covers, each
    compiled on its own (no loops, so nothing is under-counted). XLA also
    counts the elementwise work in them (bias, ReLU and its derivative)."""
    critic, policy = agent.critic, agent.policy
    obs, act = batch.observations, batch.actions

    def critic_fwd(p):
        return critic.apply(p, obs, act)

    def critic_fwd_bwd(p):
        return jax.grad(lambda p: jnp.sum(critic.apply(p, obs, act)))(p)

    def policy_fwd(p):
        return policy.apply(p, obs)

    def policy_fwd_bwd(p):
        return jax.grad(lambda p: sum(jnp.sum(x) for x in jax.tree.leaves(policy.apply(p, obs))))(p)

    out = {}
    for name, fn, params in [("critic_fwd", critic_fwd, state.critic_params),
                             ("critic_fwd_bwd", critic_fwd_bwd, state.critic_params),
                             ("policy_fwd", policy_fwd, state.policy_params),
                             ("policy_fwd_bwd", policy_fwd_bwd, state.policy_params)]:
        flops = xla_flops(jax.jit(fn).lower(params).compile())
        if flops is None:
            return None
        out[name] = flops
    return out


def combine_parts(parts: dict, num_advantage_samples: int) -> float:
    """Total matmul FLOPs of one update from per-network-call counts (the
    same pieces as analytic_flops)."""
    return (parts["policy_fwd"]  # at s' (the forward at s is in policy_fwd_bwd)
            + parts["policy_fwd_bwd"]
            + 2 * parts["critic_fwd"]  # online + target at (s', a')
            + parts["critic_fwd_bwd"]  # (s, a)
            + num_advantage_samples * parts["critic_fwd"])


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
# Component timings (pieces rebuilt from public functions; mirror make_awac)
# --------------------------------------------------------------------------


def component_functions(agent: awac.AWAC, state: awac.AWACState, batch: Transitions):
    cfg, policy, critic = agent.config, agent.policy, agent.critic
    m, b, n = cfg.num_critics, batch.rewards.shape[0], cfg.num_quantiles

    def target_fn(state, batch, key):
        next_actions = networks.sample(policy.apply(state.policy_params, batch.next_observations), key)
        online_next = critic.apply(state.critic_params, batch.next_observations, next_actions)
        target_next = critic.apply(state.critic_target_params, batch.next_observations, next_actions)
        return awac.critic_target(
            online_next, target_next, batch.rewards, batch.terminals, cfg.discount, cfg.transform_eps
        )

    def network_fn(params, batch):
        # Critic forward + backward at (s, a) with a trivial loss: the network alone.
        return jax.value_and_grad(lambda p: jnp.sum(critic.apply(p, batch.observations, batch.actions)))(
            params
        )

    def qloss_fn(pred, target):
        return jax.value_and_grad(
            lambda p: jnp.sum(
                quantile_huber_loss(p, jnp.tile(target, (m, 1)), cfg.huber_kappa, cfg.loss_chunk_size)
            )
        )(pred)

    def critic_fn(params, state, batch, key):
        def loss(params):
            target = jax.lax.stop_gradient(target_fn(state.replace(critic_params=params), batch, key))
            pred = critic.apply(params, batch.observations, batch.actions)
            per_row = quantile_huber_loss(
                pred.reshape(m * b, n), jnp.tile(target, (m, 1)), cfg.huber_kappa, cfg.loss_chunk_size
            )
            return jnp.sum(jnp.mean(per_row.reshape(m, b), axis=1))

        return jax.value_and_grad(loss)(params)

    def advantage_fn(state, batch, key):
        dist = policy.apply(state.policy_params, batch.observations)
        sampled = networks.sample(dist, key, cfg.num_advantage_samples)
        q_pi = jax.lax.map(
            lambda a: jnp.min(
                awac.q_values(critic.apply(state.critic_params, batch.observations, a), cfg.transform_eps),
                axis=0,
            ),
            sampled,
        )
        return jnp.mean(q_pi, axis=0)

    def policy_fn(params, batch, weights):
        def loss(params):
            dist = policy.apply(params, batch.observations)
            return -jnp.mean(networks.log_prob(dist, batch.actions) * weights)

        return jax.value_and_grad(loss)(params)

    critic_opt = optax.adam(cfg.critic_lr)
    policy_opt = optax.chain(
        optax.add_decayed_weights(cfg.policy_weight_decay), optax.adam(cfg.policy_lr)
    )

    def optimiser_fn(state, critic_grads, policy_grads):
        cu, cs = critic_opt.update(critic_grads, state.critic_opt_state, state.critic_params)
        cp = optax.apply_updates(state.critic_params, cu)
        pu, ps = policy_opt.update(policy_grads, state.policy_opt_state, state.policy_params)
        pp = optax.apply_updates(state.policy_params, pu)
        tp = optax.incremental_update(cp, state.critic_target_params, cfg.tau)
        return cp, cs, pp, ps, tp

    key = jax.random.PRNGKey(3)
    target = jax.jit(target_fn)(state, batch, key)
    pred = critic.apply(state.critic_params, batch.observations, batch.actions).reshape(m * b, n)
    weights = jnp.ones((b,), jnp.float32)
    critic_grads = jax.tree.map(jnp.ones_like, state.critic_params)
    policy_grads = jax.tree.map(jnp.ones_like, state.policy_params)
    return {
        "critic target: pi(s') + sample + online & target critics at (s',a')": (
            target_fn, (state, batch, key)),
        "critic network fwd+bwd at (s,a), trivial loss": (network_fn, (state.critic_params, batch)),
        f"quantile-Huber loss+grad [{m * b},{n}] x [{n}]": (qloss_fn, (pred, target)),
        "critic loss+grad (the three above)": (critic_fn, (state.critic_params, state, batch, key)),
        f"advantage baseline: pi(s) + {cfg.num_advantage_samples} samples x critics": (
            advantage_fn, (state, batch, key)),
        "policy loss+grad: pi(s) fwd/bwd + log_prob": (policy_fn, (state.policy_params, batch, weights)),
        "optimisers: 2x Adam + soft target update": (optimiser_fn, (state, critic_grads, policy_grads)),
        "full update: one jax.jit(agent.update) call": (agent.update, (state, batch, key)),
    }


def time_components(agent, state, batch, repeats: int) -> dict[str, dict]:
    results = {}
    for name, (fn, args) in component_functions(agent, state, batch).items():
        f = jax.jit(fn)
        jax.block_until_ready(f(*args))
        times = time_calls(f, args, repeats)
        results[name] = {"median_ms": 1e3 * statistics.median(times), "min_ms": 1e3 * min(times)}
        print(f"  {name:<72s} {results[name]['median_ms']:8.2f} ms median, "
              f"{results[name]['min_ms']:8.2f} min ({repeats} calls)")
    return results


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
    xla_parts = xla_network_flops(agent, state, batch)
    xla_matmul_total = None
    if xla_parts is not None:
        xla_matmul_total = combine_parts(xla_parts, cfg.num_advantage_samples)
        analytic_total = combine_parts(flops["parts"], cfg.num_advantage_samples)
        assert abs(analytic_total - flops["total"]) < 1.0, "piece bookkeeping"
        print(f"XLA cost_analysis of the same network calls: {xla_matmul_total / 1e9:.3f} GFLOP "
              f"({xla_matmul_total / flops['total'] - 1:+.1%} vs analytic; XLA adds bias/ReLU work)")
    single = jax.jit(agent.update).lower(state, batch, run_key).compile()
    xla_update = xla_flops(single)
    if xla_update is not None:
        print(f"XLA cost_analysis of one whole jitted update: {xla_update / 1e9:.3f} GFLOP. XLA counts "
              f"a loop body once, so the {cfg.num_advantage_samples}-sample lax.map counts as 1 critic "
              f"call: analytic total - {cfg.num_advantage_samples - 1} critic fwds = "
              f"{(flops['total'] - (cfg.num_advantage_samples - 1) * flops['parts']['critic_fwd']) / 1e9:.3f}"
              " GFLOP (+ non-matmul)")

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
        print(f"components (each jitted on its own, batch {args.batch_size}):")
        components = time_components(agent, state, batch, args.component_repeats)

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
        "xla_gflop_same_network_calls": r(None if xla_matmul_total is None else xla_matmul_total / 1e9, 4),
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
