"""Where the conservative rollout's time goes: its pieces timed alone.

    python benchmarks/rollout_parts.py [--env hopper] [--rows 1001472] [--block-size 2048]

Each piece runs over the same rows in the same blocks (``lax.map``) as one
step of ``mb2po_jax.model.rollout`` at the paper's sizes (random parameters):
the ensemble's ``predict`` (5 members of 4x200 swish), the policy's forward
and its per-row sampling, the per-row random keys, the whole step; and, to
bound what the ensemble could reach, a bare chain of its matmuls (the same
shapes, no activation, no log-variance bounds) and the same chain with swish.
Prints one JSON line per piece: seconds (median of 3), and GFLOP/s with its
fraction of a 2048^2 matmul peak measured in the same process, where the
piece has matmul FLOPs.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _bench import machine_info, matmul_peak, mlp_forward_flops, time_calls  # noqa: E402
from rollout import ENVS, _models, rollout_flops_per_row  # noqa: E402  (benchmarks/rollout.py)
from mb2po_jax import networks  # noqa: E402
from mb2po_jax.envs import get_termination_fn  # noqa: E402
from mb2po_jax.model import rollout as model_rollout  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", default="hopper", choices=sorted(ENVS))
    parser.add_argument("--rows", type=int, default=1_001_472, help="a multiple of --block-size")
    parser.add_argument("--block-size", type=int, default=2048)
    args = parser.parse_args()
    obs_dim, act_dim = ENVS[args.env]
    if args.rows % args.block_size:
        parser.error(f"--rows={args.rows} must be a multiple of --block-size={args.block_size}")
    blocks = args.rows // args.block_size
    dyn, dyn_state, policy, policy_params, pool = _models(obs_dim, act_dim, jax.random.PRNGKey(0))
    reps = -(-args.rows // pool.shape[0])
    obs = jnp.tile(pool, (reps, 1))[:args.rows].reshape(blocks, args.block_size, obs_dim)
    keys = jax.random.split(jax.random.PRNGKey(3), args.rows).reshape(blocks, args.block_size, 2)
    acts = jnp.zeros((blocks, args.block_size, act_dim))

    def over_blocks(f):
        return jax.jit(lambda *xs: jax.lax.map(lambda x: f(*x), xs))

    # The bare chain takes the ensemble's own kernel shapes, [members, in, out] per layer.
    layers = {int(name.split("_")[1]): layer for name, layer in
              dyn_state.params["params"].items() if name.startswith("Dense_")}
    kernels = [layers[i]["kernel"] for i in sorted(layers)]
    members = kernels[0].shape[0]

    def random_draws(k):  # what a step draws per row besides the action (rollout.py's)
        ks = jax.vmap(lambda q: jax.random.split(q, 3))(k)
        member = jax.vmap(lambda q: jax.random.randint(q, (), 0, members))(ks[:, 1])
        noise = jax.vmap(lambda q: jax.random.normal(q, (obs_dim + 1,)))(ks[:, 2])
        return member, noise, ks[:, 0]

    def chain(act):
        def forward(x):
            h = jnp.broadcast_to(x, (members,) + x.shape)
            for i, w in enumerate(kernels):
                h = jnp.einsum("mbi,mio->mbo", h, w)
                h = act(h) if i < len(kernels) - 1 else h
            return h
        return forward

    inputs = jnp.zeros((blocks, args.block_size, obs_dim + act_dim))
    step = model_rollout.make_model_step(dyn, functools.partial(networks.sample_per_row, policy),
                                   get_termination_fn(args.env), penalty_coef=1.0,
                                   block_size=args.block_size)
    model_flop = members * mlp_forward_flops(args.rows, [k.shape[1:] for k in kernels])
    policy_flop = rollout_flops_per_row(obs_dim, act_dim, members=0) * args.rows
    pieces = [
        ("ensemble predict", over_blocks(lambda o, a: dyn.predict(dyn_state, o, a)), (obs, acts),
         model_flop),
        ("ensemble matmuls alone", over_blocks(chain(lambda h: h)), (inputs,), model_flop),
        ("ensemble matmuls + swish", over_blocks(chain(jax.nn.swish)), (inputs,), model_flop),
        ("policy forward", over_blocks(lambda o: policy.apply(policy_params, o)), (obs,),
         policy_flop),
        ("policy forward + sample", over_blocks(
            lambda o, k: networks.sample_per_row(policy, policy_params, o, k)), (obs, keys),
         policy_flop),
        ("per-row keys and draws", over_blocks(random_draws), (keys,), 0),
        ("whole step", jax.jit(lambda o, k: step(dyn_state, policy_params, o, k)),
         (obs.reshape(args.rows, obs_dim), jax.random.PRNGKey(5)), model_flop + policy_flop),
    ]
    peak = matmul_peak(2048, 5)
    for name, fn, fn_args, flop in pieces:
        jax.block_until_ready(fn(*fn_args))  # compile and warm up
        seconds = statistics.median(time_calls(fn, fn_args, 3))
        line = {"benchmark": "rollout_parts", "piece": name, "env": args.env, "rows": args.rows,
                "block_size": args.block_size, "seconds": round(seconds, 3)}
        if flop:
            line.update(gflop=round(flop / 1e9, 1), achieved_gflops=round(flop / seconds / 1e9, 1),
                        matmul_peak_gflops=round(peak, 1),
                        fraction_of_peak=round(flop / seconds / 1e9 / peak, 3))
        print(json.dumps(line), flush=True)
    print(json.dumps({"benchmark": "rollout_parts", **machine_info()}))


if __name__ == "__main__":
    main()
