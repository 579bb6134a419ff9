"""mb2po-jax: AWAC pretraining and MB2PO fine-tuning for offline RL, in JAX.

Every learning rule is a pure function ``update(state, batch, key) -> (state,
metrics)`` on a ``flax.struct`` train state; see ``mb2po_jax.agents.awac``.
"""

__version__ = "0.1.0"
