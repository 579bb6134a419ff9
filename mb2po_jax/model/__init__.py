"""The learned model and the conservative MDP built on it.

``dynamics`` (the probabilistic ensemble, paper appendix 7.2), ``penalties``
(the uncertainty u(s, a), a registry), ``rollout`` (the conservative MDP step
and the scanned h-step rollout, for any agent's ``sample_action``) and
``buffer`` (the ring buffer of the last K iterations' rollouts). Nothing here
knows which agent acts: see :mod:`mb2po_jax.agents`.
"""
