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


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from experiments.common import setup_logging
    from mb2po_jax import datagen
    from mb2po_jax.data.loaders import minari_store_path

    setup_logging()
    try:
        cfg, kinds, env_name = datagen.build_request(FLAGS)
        results = datagen.make_datasets(
            cfg, kinds, env_name=env_name, workdir=FLAGS.workdir, overwrite=FLAGS.overwrite,
            progress=FLAGS.progress_bar)
    except datagen.InterruptedGeneration as interrupted:
        print(interrupted, file=sys.stderr)
        sys.exit(130)
    except (datagen.GenerationError, FileExistsError) as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    print(datagen.summary_table(results))
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
