"""The paper's per-task hyperparameters (appendix 7.3), and MOPO's.

``MB2PO_TABLE[task] = (alpha, omega, h, lambda)``: alpha is the AWAC
temperature during fine-tuning, omega the fraction of dataset rows in a
fine-tuning batch, h the model-rollout horizon, lambda the uncertainty-penalty
coefficient. "mixed" is D4RL's medium-replay. ``MOPO_TABLE[task] = (h,
lambda)`` from MOPO's reference code (its examples/config/d4rl; MOPO has no
expert configs).
"""

from __future__ import annotations

from typing import NamedTuple


class MB2POHyperparameters(NamedTuple):
    alpha: float
    omega: float
    horizon: int
    penalty_coef: float


MB2PO_TABLE: dict[str, MB2POHyperparameters] = {
    task: MB2POHyperparameters(*values) for task, values in {
        "halfcheetah-random": (1.0, 0.8, 5, 1.0),
        "hopper-random": (1.0, 0.8, 1, 1.0),
        "walker2d-random": (1.0, 0.8, 1, 1.0),
        "halfcheetah-medium": (1.0, 0.8, 5, 1.0),
        "hopper-medium": (1.0, 0.8, 1, 1.0),
        "walker2d-medium": (1.0, 0.8, 1, 1.0),
        "halfcheetah-expert": (2.0, 0.8, 1, 1.0),
        "hopper-expert": (2.0, 0.8, 1, 1.0),
        "walker2d-expert": (2.0, 0.8, 1, 1.0),
        "halfcheetah-medium-expert": (2.0, 0.8, 1, 1.0),
        "hopper-medium-expert": (2.0, 0.8, 1, 1.0),
        "walker2d-medium-expert": (2.0, 0.8, 1, 1.0),
        "halfcheetah-mixed": (1.0, 0.01, 5, 1.0),
        "hopper-mixed": (1.0, 0.01, 1, 1.0),
        "walker2d-mixed": (1.0, 0.01, 1, 1.0),
    }.items()
}

MOPO_TABLE: dict[str, tuple[int, float]] = {
    "halfcheetah-random": (5, 0.5),
    "hopper-random": (5, 1.0),
    "walker2d-random": (1, 1.0),
    "halfcheetah-medium": (1, 1.0),
    "hopper-medium": (5, 5.0),
    "walker2d-medium": (5, 5.0),
    "halfcheetah-mixed": (5, 1.0),
    "hopper-mixed": (5, 1.0),
    "walker2d-mixed": (1, 1.0),
    "halfcheetah-medium-expert": (5, 5.0),
    "hopper-medium-expert": (5, 1.0),
    "walker2d-medium-expert": (1, 2.0),
}


def mb2po_hyperparameters(task: str) -> MB2POHyperparameters:
    """The paper's (alpha, omega, h, lambda) for a task such as 'hopper-mixed'."""
    if task not in MB2PO_TABLE:
        raise ValueError(f"Unknown paper task {task!r}; valid: {sorted(MB2PO_TABLE)}.")
    return MB2PO_TABLE[task]
