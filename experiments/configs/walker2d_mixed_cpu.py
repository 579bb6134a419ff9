"""walker2d-mixed at CPU scale (about an hour on 2 cores; see base.cpu_scale)."""

from experiments.configs.base import cpu_scale, paper_config


def get_config():
    return cpu_scale(paper_config("walker2d-mixed"))
