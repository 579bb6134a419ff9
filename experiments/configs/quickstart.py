"""Quickstart: the whole pipeline on a 2-core CPU in a few minutes.

Scale (everything else, including the architecture and the losses, is the
paper's): a 20k-step Hopper-v5 dataset recorded here by a uniformly random
policy (made on first use as the local Minari dataset
``mb2po/hopper/quickstart-random-v0``), AWAC for 3,000 steps of batch 256
(paper: 500k of batch 1024), evaluation over 5 episodes every 1,000 steps.

Random data caps what any learner can reach (about the random policy's
score), so this run checks the machinery, not the paper's numbers.
"""

from experiments.configs.base import get_base_config


def get_config():
    config = get_base_config()
    config.dataset = "minari:mb2po/hopper/quickstart-random-v0"
    config.make_dataset.enabled = True
    config.make_dataset.env_id = "Hopper-v5"
    config.make_dataset.num_steps = 20_000
    config.make_dataset.policy = "random"

    config.awac.num_steps = 3_000
    config.awac.batch_size = 256

    config.train.steps_per_chunk = 250
    config.train.eval_every = 1_000
    config.train.checkpoint_every = 500
    config.eval.num_episodes = 5
    config.eval.num_envs = 5
    return config
