"""Paper config for walker2d-medium (appendix 7.3: alpha=1, omega=0.8, h=1, lambda=1)."""

from mb2po_jax.pipeline.config import paper_config, paper_scale


def get_config():
    return paper_scale(paper_config("walker2d-medium"))
