"""Quickstart: the whole pipeline on a 2-core CPU in a few minutes.

Every phase runs; only step and sample counts shrink (the architecture and
the losses are the paper's):

* data: a 20k-step Hopper-v5 dataset recorded here by a uniformly random
  policy (made on first use as the local Minari dataset
  ``mb2po/hopper/quickstart-random-v0``);
* AWAC: 3,000 steps of batch 256 (paper: 500k of batch 1024);
* dynamics: 3,000 steps (paper: 100k), 5 members of 4x200;
* MB2PO: 10 iterations of 10,000 model samples and 250 updates, buffer of
  the last 5 iterations (paper: 500 x 1M samples and 1,000 updates, K = 100);
  hopper-mixed's alpha, omega, h, lambda;
* MOPO (``--config.algorithm=mopo``, no AWAC phase): 10 epochs of 10,000
  model samples and 250 SAC updates of batch 256, model pool of the last 5
  epochs (MOPO's reference code: 1,000 epochs of 50k start states x h and
  1,000 updates); hopper-mixed's h and lambda from MOPO's table;
* evaluation: 5 episodes, every 1,000 AWAC steps and every 5 iterations or
  epochs.

Random data caps what any learner can reach (about the random policy's
score), so this run checks the machinery, not the paper's numbers.
"""

from mb2po_jax.pipeline.config import paper_config


def get_config():
    config = paper_config("hopper-mixed")
    config.dataset = "minari:mb2po/hopper/quickstart-random-v0"
    config.make_dataset.enabled = True
    config.make_dataset.env_id = "Hopper-v5"
    config.make_dataset.num_steps = 20_000
    config.make_dataset.policy = "random"

    config.awac.num_steps = 3_000
    config.awac.batch_size = 256

    config.dynamics.num_steps = 3_000

    config.mb2po.num_iterations = 10
    config.mb2po.rollout_samples = 10_000
    config.mb2po.updates_per_iteration = 250
    config.mb2po.buffer_iterations = 5
    config.mb2po.eval_every = 5
    config.mb2po.checkpoint_every = 5

    config.mopo.num_iterations = 10
    config.mopo.rollout_samples = 10_000
    config.mopo.updates_per_iteration = 250
    config.mopo.buffer_iterations = 5
    config.mopo.eval_every = 5
    config.mopo.checkpoint_every = 5

    config.train.steps_per_chunk = 250
    config.train.eval_every = 1_000
    config.train.checkpoint_every = 500
    config.eval.num_episodes = 5
    config.eval.num_envs = 5
    return config
