"""Makes the paper's D4RL-style datasets locally with online SAC.

    python -m experiments.make_dataset --env=hopper --kind=mixed
    python -m experiments.make_dataset --env=hopper --kind=all --scale=0.1

Kinds (paper section 5; ``mixed`` is D4RL's medium-replay): ``random``,
``medium``, ``mixed``, ``expert``, ``medium-expert``, or ``all`` (every kind
from one SAC run). Datasets go to the local Minari store
(``$MINARI_DATASETS_PATH``, default ``~/.minari/datasets``) as
``mb2po/<env>/<kind>-v0``, where ``experiments.run`` finds them by task name
(``--config.dataset=hopper-mixed``). Each has a ``data_card.json``.

The SAC run behind them lives in ``--workdir`` (default
``<store>/../mb2po_behaviour/<env>-seed<seed>``) with Orbax checkpoints:
re-running the same command after a kill or Ctrl-C resumes it; asking for
``expert`` after ``mixed`` continues the same run. An existing dataset is
reused, never overwritten without ``--overwrite``.

Sizes default to D4RL's (1M transitions for random/medium/expert);
``--scale=0.1`` or ``--size=N`` makes smaller ones. The medium policy is the
first evaluation with a normalised score >= ``--medium_target -
--medium_tolerance``; the expert is trained for ``--max_env_steps``. See
``docs/datasets.md`` for the options, speed and wall times.
"""

from __future__ import annotations

import sys
from pathlib import Path

from absl import app, flags

FLAGS = flags.FLAGS


def _define_flags() -> None:
    from mb2po_jax.datagen import D4RL_DATASET_SIZE

    flags.DEFINE_string("env", None, "hopper, halfcheetah, walker2d, or a gymnasium MuJoCo id "
                        "with actions in [-1, 1] (e.g. Ant-v5).")
    flags.DEFINE_string("kind", None, "random, medium, mixed (= medium-replay), expert, "
                        "medium-expert, or all.")
    flags.DEFINE_integer("seed", 0, "Seeds everything: SAC, envs, rollouts.")
    flags.DEFINE_float("scale", 1.0, f"random/medium/expert sizes = scale x {D4RL_DATASET_SIZE:,} "
                       "transitions (D4RL's size at 1).")
    flags.DEFINE_integer("size", None, "Transitions per random/medium/expert dataset "
                         "(overrides --scale).")
    flags.DEFINE_integer("max_env_steps", 1_000_000, "SAC budget in env steps: the expert's "
                         "training length, the replay buffer's capacity, and the cap on the "
                         "search for the medium policy.")
    flags.DEFINE_integer("learning_starts", 5_000, "Env steps of the initial actor before "
                         "SAC updates start.")
    flags.DEFINE_integer("update_every", 50, "Env steps per chunk; each chunk runs as many "
                         "SAC updates (one jitted lax.scan).")
    flags.DEFINE_integer("batch_size", 256, "SAC batch size.")
    flags.DEFINE_list("hidden_dims", ["256", "256"], "SAC actor/critic hidden layer widths.")
    flags.DEFINE_integer("eval_every", 5_000, "Env steps between policy evaluations.")
    flags.DEFINE_integer("eval_episodes", 10, "Episodes per evaluation (deterministic actions).")
    flags.DEFINE_float("medium_target", 33.0, "Normalised score of the medium policy.")
    flags.DEFINE_float("medium_tolerance", 5.0, "The medium policy is the first evaluation "
                       "scoring >= medium_target - medium_tolerance.")
    flags.DEFINE_float("expert_target", None, "Stop SAC once an evaluation reaches this "
                       "normalised score (default: train for --max_env_steps).")
    flags.DEFINE_string("expert_policy", "best", "Expert = the 'best' evaluated actor or the "
                        "'final' one.")
    flags.DEFINE_integer("checkpoint_every", 25_000, "Env steps between SAC checkpoints.")
    flags.DEFINE_float("ref_min_score", None, "Random-policy return for normalised scores "
                       "(default: D4RL's, known for hopper/halfcheetah/walker2d).")
    flags.DEFINE_float("ref_max_score", None, "Expert return for normalised scores.")
    flags.DEFINE_string("workdir", None, "Directory of the SAC run (checkpoints, behaviour "
                        "policies); default beside the Minari store.")
    flags.DEFINE_bool("overwrite", False, "Remake datasets that already exist.")
    flags.DEFINE_bool("progress_bar", True, "Show progress bars with ETAs.")


def build_config(f=FLAGS):
    """Flags -> (GenerationConfig, kinds, env name); raises GenerationError."""
    from mb2po_jax import datagen
    from mb2po_jax.agents.sac import SACConfig

    if not f.env:
        raise datagen.GenerationError(
            "--env is required: hopper, halfcheetah, walker2d, or a gymnasium MuJoCo id.")
    if not f.kind:
        raise datagen.GenerationError(
            f"--kind is required; valid kinds: {', '.join(datagen.KIND_TABLE)}, all.")
    kinds = datagen.expand_kinds([k for k in f.kind.split(",") if k.strip()])
    env_name, env_id = datagen.resolve_env(f.env)
    if f.size is not None:
        size = f.size
    else:
        if not f.scale > 0:
            raise datagen.GenerationError(f"--scale={f.scale}: must be > 0 (e.g. 0.1).")
        size = max(1, round(f.scale * datagen.D4RL_DATASET_SIZE))
    refs = None
    if (f.ref_min_score is None) != (f.ref_max_score is None):
        raise datagen.GenerationError(
            "--ref_min_score and --ref_max_score go together; pass both or neither.")
    if f.ref_min_score is not None:
        refs = (f.ref_min_score, f.ref_max_score)
    try:
        hidden = tuple(int(width) for width in f.hidden_dims)
    except ValueError:
        raise datagen.GenerationError(
            f"--hidden_dims={','.join(f.hidden_dims)}: must be comma-separated integers, "
            f"e.g. 256,256.") from None
    cfg = datagen.GenerationConfig(
        env_id=env_id, seed=f.seed, sac=SACConfig(hidden_dims=hidden),
        batch_size=f.batch_size, max_env_steps=f.max_env_steps,
        learning_starts=f.learning_starts, update_every=f.update_every,
        eval_every=f.eval_every, eval_episodes=f.eval_episodes,
        medium_target=f.medium_target, medium_tolerance=f.medium_tolerance,
        expert_target=f.expert_target, expert_policy=f.expert_policy,
        checkpoint_every=f.checkpoint_every, ref_scores=refs, dataset_size=size,
    )
    datagen.validate_request(cfg, kinds)
    datagen.env_dims(env_id)
    return cfg, kinds, env_name


def _fmt(value, spec: str = ".1f") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, dict):
        return "/".join(_fmt(v, spec) for v in value.values())
    return format(value, spec)


def summary_table(results) -> str:
    # norm. return: the dataset's mean normalised return (sampled actions);
    # policy eval: its behaviour policy's deterministic evaluation score.
    header = (f"{'kind':<14}{'dataset id':<30}{'size':>10}{'episodes':>9}{'return':>9}"
              f"{'norm.':>7}  {'policy eval':<12}{'SAC steps':<15}{'wall s':>7}  status")
    lines = [header]
    for kind, made in results.items():
        c = made.card
        policy = c["behaviour_policy"]
        wall = c.get("wall_seconds", {}).get("total_this_kind")
        lines.append(
            f"{kind:<14}{made.dataset_id:<30}{c['size']:>10,}{c['episodes']:>9}"
            f"{_fmt(c['return_mean']):>9}{_fmt(c['normalized_return_mean']):>7}  "
            f"{_fmt(policy.get('eval_normalized_score')):<12}"
            f"{_fmt(policy.get('sac_env_steps'), 'd'):<15}"
            f"{_fmt(wall, '.0f'):>7}  {'reused' if made.reused else 'made'}")
    return "\n".join(lines)


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from experiments.common import setup_logging
    from mb2po_jax import datagen
    from mb2po_jax.data.loaders import minari_store_path

    setup_logging()
    try:
        cfg, kinds, env_name = build_config()
        results = datagen.make_datasets(
            cfg, kinds, env_name=env_name, workdir=FLAGS.workdir, overwrite=FLAGS.overwrite,
            progress=FLAGS.progress_bar)
    except datagen.InterruptedGeneration as interrupted:
        print(interrupted, file=sys.stderr)
        sys.exit(130)
    except (datagen.GenerationError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    print(summary_table(results))
    store = minari_store_path()
    print(f"Datasets in the Minari store {store}; data cards: <dataset dir>/"
          f"{datagen.CARD_FILE}. Use them with experiments.run "
          f"--config.dataset={env_name}-<kind>.")
    if results:
        workdir = Path(next(iter(results.values())).card.get("behaviour_workdir", ""))
        print(f"SAC run and behaviour policies: {workdir}")


def cli() -> None:
    # Flags are defined here, not at import, so the module can be imported
    # beside other absl programs (tests).
    _define_flags()
    app.run(main)


if __name__ == "__main__":
    cli()
