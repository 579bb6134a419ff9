"""walker2d-medium at CPU scale (the reproduction harness's `--scale=cpu`; see base.cpu_scale)."""

from mb2po_jax.pipeline.config import cpu_scale, paper_config


def get_config():
    return cpu_scale(paper_config("walker2d-medium"))
