"""Uncertainty penalties u(s, a) for the conservative model MDP (paper eq. 3).

A penalty is a pure function of the ensemble members' predicted Gaussians
for the same rows,

    u(means [M, ..., D], logvars [M, ..., D]) -> [...]

over (delta s, r) outputs, M the members in use (the elites). The model
rollout subtracts ``lambda * u`` from the model reward. Register a new one
with :func:`register_penalty`; its name becomes a valid
``mb2po.uncertainty`` value.

Registered:

* ``"max_std_norm"`` (default; MOPO's rule, which the paper's text follows:
  "the maximum standard deviation across an ensemble"):
  ``u = max_i ||sigma_i(s, a)||_2``, sigma_i the std of (delta s, r);
* ``"max_frobenius"`` (Algorithm 1 as printed): ``u = max_i ||Sigma_i||_F``
  with Sigma_i = diag(sigma_i^2), i.e. ``max_i sqrt(sum_d sigma_id^4)``.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

Penalty = Callable[[jax.Array, jax.Array], jax.Array]
PENALTIES: dict[str, Penalty] = {}


def register_penalty(name: str) -> Callable[[Penalty], Penalty]:
    """Decorator: registers ``u(means, logvars)`` under ``name``."""

    def register(fn: Penalty) -> Penalty:
        if name in PENALTIES:
            raise ValueError(f"A penalty named {name!r} is already registered.")
        PENALTIES[name] = fn
        return fn

    return register


def get_penalty(name: str) -> Penalty:
    try:
        return PENALTIES[name]
    except KeyError:
        raise ValueError(
            f"mb2po.uncertainty={name!r}: unknown penalty; valid: {sorted(PENALTIES)} "
            f"(add one with mb2po_jax.model.penalties.register_penalty).") from None


@register_penalty("max_std_norm")
def max_std_norm(means: jax.Array, logvars: jax.Array) -> jax.Array:
    del means
    return jnp.max(jnp.sqrt(jnp.sum(jnp.exp(logvars), axis=-1)), axis=0)  # ||sigma||_2


@register_penalty("max_frobenius")
def max_frobenius(means: jax.Array, logvars: jax.Array) -> jax.Array:
    del means
    return jnp.max(jnp.sqrt(jnp.sum(jnp.exp(2.0 * logvars), axis=-1)), axis=0)  # ||diag(sigma^2)||_F
