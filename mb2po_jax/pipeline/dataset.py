"""The run's dataset: found (or recorded, where the settings allow),
validated against its environment, with the score references."""

from __future__ import annotations

import dataclasses
import logging

from mb2po_jax import envs
from mb2po_jax.data import DatasetError, DatasetInfo, DatasetNotFoundError, resolve_dataset, \
    validate_transitions
from mb2po_jax.datagen import make_minari_dataset
from mb2po_jax.pipeline.errors import UsageError
from mb2po_jax.pipeline.settings import DatasetSettings
from mb2po_jax.transitions import Transitions

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class PreparedData:
    """A validated dataset on the host plus what the run needs to know about it."""

    transitions: Transitions
    info: DatasetInfo
    env_id: str
    ref_scores: tuple[float, float] | None


def _make_missing_dataset(data: DatasetSettings) -> None:
    scheme, _, dataset_id = data.name.partition(":")
    if scheme != "minari" or not dataset_id:
        raise UsageError(
            f"make_dataset.enabled only records Minari datasets named 'minari:<id>', "
            f"but dataset is '{data.name}'."
        )
    spec = data.make
    refs = envs.lookup_ref_scores(spec["env_id"])
    logger.info(
        "Dataset %s not found: recording %d steps of a %s policy in %s.",
        dataset_id, spec["num_steps"], spec["policy"], spec["env_id"],
    )
    make_minari_dataset(
        dataset_id,
        spec["env_id"],
        spec["num_steps"],
        seed=spec["seed"],
        policy=spec["policy"],
        ref_min_score=refs[0] if refs else None,
        ref_max_score=refs[1] if refs else None,
    )


def prepare_dataset(settings: DatasetSettings) -> PreparedData:
    """Finds (or, where the settings allow, records) and validates the dataset,
    and picks the evaluation env and the score references."""
    try:
        data, info = resolve_dataset(
            settings.name, d4rl_dir=settings.d4rl_dir, download=settings.download
        )
    except DatasetNotFoundError:
        if not settings.make["enabled"]:
            raise
        _make_missing_dataset(settings)
        data, info = resolve_dataset(settings.name)
    env_id = settings.env_id or info.env_id
    if not env_id:
        raise UsageError(
            f"Dataset '{settings.name}' ({info.source}) does not say which environment "
            f"it comes from; pass --config.env_id=<gymnasium id>, e.g. Hopper-v5."
        )
    try:
        obs_dim, act_dim = envs.gym_dims(env_id)
    except ValueError as error:
        raise DatasetError(f"Dataset {settings.name}: cannot evaluate in {error}") from None
    validate_transitions(
        data, obs_dim=obs_dim, act_dim=act_dim, name=settings.name, env_id=env_id
    )
    if info.ref_min_score is not None and info.ref_max_score is not None:
        refs = (info.ref_min_score, info.ref_max_score)
    else:
        refs = envs.lookup_ref_scores(env_id)
    logger.info(
        "Dataset %s: %d transitions from %s (fingerprint %s); evaluating in %s.",
        settings.name, info.num_transitions, info.source, info.fingerprint[:12], env_id,
    )
    return PreparedData(transitions=data, info=info, env_id=env_id, ref_scores=refs)
