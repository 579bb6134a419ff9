"""A dataset request from the command line's flags, checked before any work."""

from __future__ import annotations

from mb2po_jax.agents.sac import SACConfig
from mb2po_jax.datagen.config import (D4RL_DATASET_SIZE, GenerationConfig, GenerationError,
                                      env_dims, resolve_env)
from mb2po_jax.datagen.kinds import KIND_TABLE, expand_kinds, validate_request


def build_request(f) -> tuple[GenerationConfig, list[str], str]:
    """``experiments.make_dataset``'s flags (any object with those attributes)
    -> ``(GenerationConfig, kinds, env name)``.

    Raises:
        GenerationError: naming the flag, the value and the fix.
    """

    if not f.env:
        raise GenerationError(
            "--env is required: hopper, halfcheetah, walker2d, or a gymnasium MuJoCo id.")
    if not f.kind:
        raise GenerationError(
            f"--kind is required; valid kinds: {', '.join(KIND_TABLE)}, all.")
    kinds = expand_kinds([k for k in f.kind.split(",") if k.strip()])
    env_name, env_id = resolve_env(f.env)
    if f.size is not None:
        size = f.size
    else:
        if not f.scale > 0:
            raise GenerationError(f"--scale={f.scale}: must be > 0 (e.g. 0.1).")
        size = max(1, round(f.scale * D4RL_DATASET_SIZE))
    refs = None
    if (f.ref_min_score is None) != (f.ref_max_score is None):
        raise GenerationError(
            "--ref_min_score and --ref_max_score go together; pass both or neither.")
    if f.ref_min_score is not None:
        refs = (f.ref_min_score, f.ref_max_score)
    try:
        hidden = tuple(int(width) for width in f.hidden_dims)
    except ValueError:
        raise GenerationError(
            f"--hidden_dims={','.join(f.hidden_dims)}: must be comma-separated integers, "
            f"e.g. 256,256.") from None
    cfg = GenerationConfig(
        env_id=env_id, seed=f.seed, sac=SACConfig(hidden_dims=hidden),
        batch_size=f.batch_size, max_env_steps=f.max_env_steps,
        learning_starts=f.learning_starts, update_every=f.update_every,
        eval_every=f.eval_every, eval_episodes=f.eval_episodes,
        medium_target=f.medium_target, medium_tolerance=f.medium_tolerance,
        expert_target=f.expert_target, expert_policy=f.expert_policy,
        checkpoint_every=f.checkpoint_every, ref_scores=refs, dataset_size=size,
    )
    validate_request(cfg, kinds)
    env_dims(env_id)
    return cfg, kinds, env_name
