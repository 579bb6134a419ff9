"""Checks a loaded dataset before any learner sees it.

A bad dataset (NaNs, unnormalised actions, the wrong environment) otherwise
shows up hours later as a diverged critic or a policy that only ever outputs
+-1. Every check here fails fast with a message that names the field, the
offending value or shape, and what to do about it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from mb2po_jax.transitions import Transitions

# Policies squash actions with tanh, so the data must live in the same box. A
# tiny slack absorbs float32 round-off in stored datasets (e.g. 1.0000001).
ACTION_BOUND_TOLERANCE = 1e-5

# Expected rank of each field: [N, dim] for vectors, [N] for scalars.
_RANKS = {
    "observations": 2,
    "actions": 2,
    "rewards": 1,
    "next_observations": 2,
    "terminals": 1,
    "timeouts": 1,
}


class DatasetError(ValueError):
    """A dataset that cannot be trained on as it is."""


def _fields(data: Transitions) -> dict[str, np.ndarray]:
    return {field: np.asarray(getattr(data, field)) for field in _RANKS}


def check_same_length(arrays: Mapping[str, np.ndarray], name: str = "dataset") -> int:
    """Returns the common leading length, or raises naming the odd field out."""
    for field, array in arrays.items():
        if np.ndim(array) == 0:
            raise DatasetError(
                f"{name}: field '{field}' is a scalar; it must be an array with one row "
                f"per transition."
            )
    lengths = {field: int(np.shape(array)[0]) for field, array in arrays.items()}
    reference_field, reference = next(iter(lengths.items()))
    for field, length in lengths.items():
        if length != reference:
            raise DatasetError(
                f"{name}: field '{field}' has {length} rows but '{reference_field}' has "
                f"{reference}; every field must have one row per transition "
                f"(lengths: {lengths}). The file is truncated or was written inconsistently."
            )
    return reference


def _check_ranks(arrays: Mapping[str, np.ndarray], name: str) -> None:
    for field, rank in _RANKS.items():
        shape = arrays[field].shape
        if len(shape) != rank:
            expected = "[N, dim]" if rank == 2 else "[N]"
            raise DatasetError(
                f"{name}: field '{field}' has shape {shape} but must be {expected}; "
                f"flatten or squeeze it when building the dataset."
            )
    if arrays["observations"].shape[1] != arrays["next_observations"].shape[1]:
        raise DatasetError(
            f"{name}: 'observations' have dim {arrays['observations'].shape[1]} but "
            f"'next_observations' have dim {arrays['next_observations'].shape[1]}; "
            f"both must come from the same observation space."
        )


def _check_dims(
    arrays: Mapping[str, np.ndarray],
    name: str,
    obs_dim: int | None,
    act_dim: int | None,
    env_id: str | None,
) -> None:
    env = f"environment {env_id}" if env_id else "the environment"
    found_obs, found_act = arrays["observations"].shape[1], arrays["actions"].shape[1]
    if obs_dim is not None and found_obs != obs_dim:
        raise DatasetError(
            f"{name}: 'observations' have dim {found_obs} but {env} has obs_dim {obs_dim}; "
            f"the dataset was recorded in a different environment (or version). "
            f"Pick the dataset that matches the environment."
        )
    if act_dim is not None and found_act != act_dim:
        raise DatasetError(
            f"{name}: 'actions' have dim {found_act} but {env} has act_dim {act_dim}; "
            f"the dataset was recorded in a different environment (or version). "
            f"Pick the dataset that matches the environment."
        )


def _check_finite(arrays: Mapping[str, np.ndarray], name: str) -> None:
    for field, array in arrays.items():
        bad = ~np.isfinite(array)
        if not bad.any():
            continue
        bad_rows = bad.reshape(len(array), -1).any(axis=1)
        rows = np.flatnonzero(bad_rows)
        num_nan, num_inf = int(np.isnan(array).sum()), int(np.isinf(array).sum())
        raise DatasetError(
            f"{name}: field '{field}' has non-finite values (NaN: {num_nan}, inf: {num_inf}) "
            f"in {len(rows)} rows, first at row {rows[0]}; drop or repair those rows "
            f"before training."
        )


def _check_action_range(actions: np.ndarray, name: str) -> None:
    low, high = float(actions.min()), float(actions.max())
    limit = 1.0 + ACTION_BOUND_TOLERANCE
    if low < -limit or high > limit:
        raise DatasetError(
            f"{name}: field 'actions' spans [{low:.6g}, {high:.6g}], outside [-1, 1]. "
            f"The policy outputs tanh-squashed actions, so the environment's action "
            f"space must be normalised to [-1, 1] and the dataset's actions rescaled "
            f"(or clipped) the same way."
        )


def _check_flags(arrays: Mapping[str, np.ndarray], name: str) -> None:
    for field in ("terminals", "timeouts"):
        flags = arrays[field]
        bad = (flags != 0) & (flags != 1)
        if bad.any():
            values = np.unique(flags[bad])[:5]
            raise DatasetError(
                f"{name}: field '{field}' must hold only 0/1 but has values {values.tolist()} "
                f"({int(bad.sum())} rows, first at row {int(np.flatnonzero(bad)[0])}); "
                f"store it as a boolean flag."
            )


def validate_transitions(
    data: Transitions,
    *,
    obs_dim: int | None = None,
    act_dim: int | None = None,
    name: str = "dataset",
    env_id: str | None = None,
) -> None:
    """Raises :class:`DatasetError` if ``data`` is unfit for training.

    Args:
        data: the transitions to check (numpy or jax arrays).
        obs_dim: the evaluation environment's observation size, if known.
        act_dim: the evaluation environment's action size, if known.
        name: how to call the dataset in messages (e.g. its registry name).
        env_id: the environment ``obs_dim``/``act_dim`` come from, for messages.
    """
    arrays = _fields(data)
    if check_same_length(arrays, name) == 0:
        raise DatasetError(
            f"{name}: the dataset is empty (0 transitions); check the path or dataset "
            f"id and that the file was fully written."
        )
    _check_ranks(arrays, name)
    _check_dims(arrays, name, obs_dim, act_dim, env_id)
    _check_finite(arrays, name)
    _check_action_range(arrays["actions"], name)
    _check_flags(arrays, name)
