"""The base config: every field at its default (mb2po_jax.pipeline.config)."""

from mb2po_jax.pipeline.config import get_base_config


def get_config():
    return get_base_config()
