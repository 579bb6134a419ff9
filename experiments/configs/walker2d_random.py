"""Paper config for walker2d-random (appendix 7.3: alpha=1, omega=0.8, h=1, lambda=1)."""

from experiments.configs.base import paper_config


def get_config():
    return paper_config("walker2d-random")
