"""Offline datasets: the transitions pytree, loaders, the task registry."""

from mb2po_jax.data.loaders import (
    DatasetInfo,
    DatasetNotFoundError,
    fingerprint,
    load_d4rl_hdf5,
    load_minari,
)
from mb2po_jax.data.maker import MadeDataset, make_minari_dataset
from mb2po_jax.data.registry import (
    ENV_IDS,
    KINDS,
    d4rl_filename,
    env_name_from_id,
    parse_task_name,
    resolve_dataset,
)
from mb2po_jax.data.transitions import Transitions, sample_batch, to_device
from mb2po_jax.data.validation import DatasetError, validate_transitions

# Dataset generation (SAC + Orbax) is imported on first use: it is heavier than
# the loaders, and mb2po_jax.sac imports this package.
_GENERATION_EXPORTS = frozenset(
    {"GenerationConfig", "GenerationError", "make_datasets", "train_behaviour",
     "load_behaviour_policy"}
)


def __getattr__(name: str):
    if name in _GENERATION_EXPORTS:
        from mb2po_jax.data import generation

        return getattr(generation, name)
    raise AttributeError(f"module 'mb2po_jax.data' has no attribute '{name}'")
