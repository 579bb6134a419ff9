"""Offline datasets: the transitions pytree, loaders, the task registry."""

from mb2po_jax.data.transitions import Transitions, sample_batch, to_device
