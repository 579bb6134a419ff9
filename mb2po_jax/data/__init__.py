"""Offline datasets: loaders, the task registry, validation, Minari I/O.

Reading and writing only; making datasets (SAC, rollouts, data cards) is
:mod:`mb2po_jax.datagen`, which builds on this package and never the reverse.
"""

from mb2po_jax.data.loaders import (
    DatasetInfo,
    DatasetNotFoundError,
    fingerprint,
    load_d4rl_hdf5,
    load_minari,
)
from mb2po_jax.data.minari_io import read_episode_buffers, write_minari_dataset
from mb2po_jax.data.registry import (
    KINDS,
    d4rl_filename,
    d4rl_kind,
    env_name_from_id,
    parse_task_name,
    resolve_dataset,
)
from mb2po_jax.data.validation import DatasetError, validate_transitions
