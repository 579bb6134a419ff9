"""What every learner's training shares: the scanned train-steps skeleton,
chunk metrics, and hyperparameter dataclasses read from config mappings.

A chunk is K updates as ONE ``lax.scan`` under one ``jit`` (PureJaxRL's
style): batch sampling happens inside the scan, and metrics cross to the host
once per chunk, reduced by :func:`reduce_chunk_metrics`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, TypeVar

import jax
import jax.numpy as jnp
import optax

Metrics = dict[str, jax.Array]
State = TypeVar("State")
Config = TypeVar("Config")


def reduce_chunk_metrics(metrics: Metrics) -> Metrics:
    """Per-step metrics [K] -> one value per chunk: the max for ``*_max``
    statistics (so the divergence guard sees a spike a mean would hide), the
    mean for the rest."""
    return {k: jnp.max(v) if k.endswith("_max") else jnp.mean(v) for k, v in metrics.items()}


def make_train_steps(
    update: Callable[[State, Any, jax.Array], tuple[State, Metrics]],
    sample: Callable[[Any, jax.Array], Any],
    num_steps: int,
) -> Callable[[State, Any, jax.Array], tuple[State, Metrics]]:
    """``num_steps`` updates on sampled batches, as one jitted ``lax.scan``.

    Args:
        update: ``(state, batch, key) -> (state, metrics)``.
        sample: ``(data, key) -> batch``, jittable; ``data`` is any pytree
            (a dataset, or a replay buffer and its fill level).
        num_steps: K, updates per call.

    Returns:
        ``train_steps(state, data, key) -> (state, metrics)``, metrics reduced
        over the chunk. Step ``i`` uses ``jax.random.split(key, K)[i]``, split
        into a batch key and an update key. ``data`` is an argument, not a
        closed-over constant, so it is not baked into the compiled program.
    """

    @jax.jit
    def train_steps(state: State, data: Any, key: jax.Array):
        def body(state, step_key):
            batch_key, update_key = jax.random.split(step_key)
            return update(state, sample(data, batch_key), update_key)

        state, metrics = jax.lax.scan(body, state, jax.random.split(key, num_steps))
        return state, reduce_chunk_metrics(metrics)

    return train_steps


def optimizer_step(optimizer: optax.GradientTransformation, grads: Any, opt_state: Any,
                   params: Any) -> tuple[Any, Any]:
    """One optax step: ``(params, opt_state)`` after applying ``grads``.
    ``params`` go to ``update`` too (weight decay needs them; Adam ignores them)."""
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state


def config_from_mapping(cls: type[Config], values: Any, *, section: str,
                        run_fields: Iterable[str] = ()) -> Config:
    """Builds the hyperparameter dataclass ``cls`` from a mapping (e.g. an
    ``ml_collections.ConfigDict`` section).

    Every key must be a field of ``cls`` or one of ``run_fields`` (keys the
    launcher reads itself, such as ``num_steps``): a key that nothing reads is
    a typo or a stale setting, and is refused rather than silently dropped.
    Sequences become tuples (configs read back from JSON hold lists).

    Raises:
        ValueError: naming the unknown keys, the section and the valid keys.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    values = dict(values)
    unknown = sorted(set(values) - names - set(run_fields))
    if unknown:
        raise ValueError(
            f"{section}: unknown key(s) {unknown}; nothing reads them. Valid keys: "
            f"{sorted(names | set(run_fields))}. Fix the spelling or remove them.")
    kwargs = {k: (tuple(v) if isinstance(v, list) else v)
              for k, v in values.items() if k in names}
    return cls(**kwargs)


def defaults(cls: type) -> dict[str, Any]:
    """A dataclass's field defaults, in declaration order (for building configs
    from the one place defaults are declared)."""
    return {f.name: f.default for f in dataclasses.fields(cls)}
