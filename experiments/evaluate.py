"""Evaluates a run's checkpoint: ``python -m experiments.evaluate --workdir=DIR``.

The command line of :func:`mb2po_jax.pipeline.evaluate_checkpoint`: restores
the latest (or ``--step``) checkpoint of the policy's last phase in ``DIR``
(``mb2po`` or ``mopo`` if the run has one, else ``awac``; ``--phase`` picks
one) from the config stored inside it, so it needs neither the config file
nor the dataset; runs ``--num_episodes`` deterministic episodes and prints
the D4RL-normalised score (and, last, one JSON line with everything).
"""

from __future__ import annotations

import json
import sys

from absl import app, flags

from mb2po_jax.pipeline import UsageError, evaluate_checkpoint
from mb2po_jax.pipeline.restore import POLICY_PHASES

from experiments.common import setup_logging


def main(argv: list[str]) -> None:
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    values = flags.FLAGS
    if not values.workdir:
        raise app.UsageError("--workdir is required.")
    setup_logging()
    try:
        result = evaluate_checkpoint(
            values.workdir, phase=values.phase, step=values.step,
            num_episodes=values.num_episodes, seed=values.seed,
        )
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
    score = result.get("normalized_score")
    if "per_seed" in result:
        for one in result["per_seed"]:
            print(f"seed {one['seed']}: return {one['return_mean']:.1f} ± "
                  f"{one['return_std']:.1f}" + ("" if one["normalized_score"] is None else
                                               f", normalized score {one['normalized_score']:.1f}"))
        value = "return_mean" if score is None else "normalized_score"
        print(f"{result['dataset']} @ {result['phase']} step {result['step']}: {value} "
              f"{result[value]:.1f} ± {result[value + '_over_seeds_std']:.1f} over seeds "
              f"{result['seeds']} ({result['num_episodes']} episodes each)")
        print(json.dumps(result))
        return
    print(
        f"{result['dataset']} @ {result['phase']} step {result['step']} in {result['env_id']}: return "
        f"{result['return_mean']:.1f} ± {result['return_std']:.1f} over "
        f"{result['num_episodes']} episodes"
        + ("" if score is None else f"; normalized score {score:.1f} ± "
           f"{result['normalized_score_std']:.1f}")
    )
    print(json.dumps(result))


def cli() -> None:
    # Defined here, not at import, so the module imports beside other absl programs.
    flags.DEFINE_string("workdir", None, "A run directory made by experiments.run.")
    flags.DEFINE_string("phase", None, f"One of {list(POLICY_PHASES)} (default: the last run).")
    flags.DEFINE_integer("step", None, "Checkpoint step to evaluate (default: latest).")
    flags.DEFINE_integer("num_episodes", None, "Episodes (default: the run's config).")
    flags.DEFINE_integer("seed", None, "Evaluation seed (default: the run's config).")
    app.run(main)


if __name__ == "__main__":
    cli()
