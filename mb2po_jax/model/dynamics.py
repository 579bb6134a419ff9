"""The probabilistic dynamics ensemble (paper section 4.3, appendix 7.2).

N members (paper: 5), each a 4x200 swish MLP mapping the normalised (s, a) to
a diagonal Gaussian over y = (s' - s, r): a mean and a log-variance per output
dimension. As in PETS/MBPO/MOPO, the log-variance is squashed softly between
two *learned* bounds,

    logvar = max_logvar - softplus(max_logvar - raw)
    logvar = min_logvar + softplus(logvar - min_logvar),

and the loss carries ``bound_coef * (sum(max_logvar) - sum(min_logvar))`` so
the bounds tighten around the data instead of drifting apart. Each member is
trained with the Gaussian negative log-likelihood on its own independently
drawn batches (the only source of diversity besides initialisation).

Choices where the paper is silent (documented here on purpose):

* Inputs are normalised with the dataset's mean/std (paper); targets are not
  (as MOPO), so predicted rewards and state deltas are in env units.
* Weight decay 1e-4 is coupled L2 on the dense kernels (added to the gradient
  before Adam), not on biases or the log-variance bounds.
* A held-out split (``holdout_fraction`` of the data, at most
  ``max_holdout`` rows) reports per-member validation MSE and NLL;
  ``num_elites`` members with the lowest validation MSE are used in rollouts
  (default: all members, as the paper).
* The training NLL is summed over the output dimensions
  (``nll_reduction="sum"``); MOPO's reference code averages them
  (``"mean"``), which makes the bound penalty and the weight decay about
  ``obs_dim + 1`` times stronger relative to the data term.
* The paper trains for a fixed 100k steps and keeps the final parameters
  (the default). ``early_stopping=True`` is MOPO's rule instead: after every
  chunk each member's held-out MSE is compared with its best so far; a member
  whose MSE improved by more than 1 % keeps a snapshot of its parameters, and
  training stops once ``patience`` consecutive checks improved no member
  (MOPO stops when more than 5 epochs did, i.e. after 6). The snapshots are
  the final model.

The members are one ``flax`` module whose parameters carry a leading member
axis; ``jax.vmap`` over that axis evaluates them together (one batched matmul
per layer) for both training (each member its own inputs) and rollouts (all
members the same inputs).
"""

from __future__ import annotations

import dataclasses
from typing import Callable, NamedTuple, Sequence

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

from mb2po_jax.training import config_from_mapping
from mb2po_jax.training import make_train_steps as make_scanned_steps
from mb2po_jax.transitions import Transitions

Metrics = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class DynamicsConfig:
    """Hyperparameters. Defaults are the paper's (appendix 7.2)."""

    num_members: int = 5
    num_elites: int = 5
    hidden_dims: Sequence[int] = (200, 200, 200, 200)
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    bound_coef: float = 0.01  # weight of the learned log-variance bounds in the loss
    init_max_logvar: float = 0.5
    init_min_logvar: float = -10.0
    holdout_fraction: float = 0.1
    max_holdout: int = 5000
    nll_reduction: str = "sum"  # over output dimensions: "sum" or "mean" (MOPO)
    early_stopping: bool = False  # MOPO's best-holdout snapshots and patience
    patience: int = 5  # checks without improvement before stopping
    improvement_threshold: float = 0.01  # relative held-out MSE improvement

    def __post_init__(self):
        if self.nll_reduction not in ("sum", "mean"):
            raise ValueError(f"dynamics.nll_reduction={self.nll_reduction!r}: valid choices "
                             f"are 'sum' and 'mean'.")
        if self.patience < 1:
            raise ValueError(f"dynamics.patience={self.patience} must be >= 1.")

    @classmethod
    def from_dict(cls, values, run_fields=("num_steps", "batch_size")) -> "DynamicsConfig":
        """From a mapping (the config's ``dynamics`` section); keys other than
        these hyperparameters and ``run_fields`` are refused."""
        return config_from_mapping(cls, values, section="dynamics", run_fields=run_fields)


class GaussianMLP(nn.Module):
    """One member: normalised x -> (mean [..., D], logvar [..., D])."""

    output_dim: int
    hidden_dims: Sequence[int] = (200, 200, 200, 200)
    init_max_logvar: float = 0.5
    init_min_logvar: float = -10.0

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        for width in self.hidden_dims:
            x = nn.swish(nn.Dense(width)(x))
        out = nn.Dense(2 * self.output_dim)(x)
        mean, raw_logvar = jnp.split(out, 2, axis=-1)
        d = self.output_dim
        max_logvar = self.param("max_logvar", nn.initializers.constant(self.init_max_logvar), (d,))
        min_logvar = self.param("min_logvar", nn.initializers.constant(self.init_min_logvar), (d,))
        logvar = max_logvar - jax.nn.softplus(max_logvar - raw_logvar)
        logvar = min_logvar + jax.nn.softplus(logvar - min_logvar)
        return mean, logvar


@flax.struct.dataclass
class DynamicsData:
    """Model inputs and targets built from transitions.

    Attributes:
        inputs: [n, obs_dim + act_dim] raw (s, a).
        targets: [n, obs_dim + 1] (s' - s, r).
    """

    inputs: jax.Array
    targets: jax.Array


def make_dynamics_data(data: Transitions) -> DynamicsData:
    """(s, a) -> (s' - s, r) pairs, float32."""
    inputs = jnp.concatenate([data.observations, data.actions], axis=-1)
    targets = jnp.concatenate(
        [data.next_observations - data.observations, data.rewards[..., None]], axis=-1
    )
    return DynamicsData(inputs.astype(jnp.float32), targets.astype(jnp.float32))


def split_holdout(
    data: DynamicsData, key: jax.Array, fraction: float, max_holdout: int
) -> tuple[DynamicsData, DynamicsData]:
    """A random (train, holdout) split; holdout = min(max_holdout, fraction * n) rows, >= 1."""
    n = data.inputs.shape[0]
    num_holdout = int(min(max_holdout, max(1, round(fraction * n))))
    if num_holdout >= n:
        raise ValueError(
            f"The dataset has {n} transitions, too few to hold out {num_holdout} for "
            f"validation; lower dynamics.holdout_fraction or use more data."
        )
    order = jax.random.permutation(key, n)
    take = lambda idx: jax.tree.map(lambda x: x[idx], data)  # noqa: E731
    return take(order[num_holdout:]), take(order[:num_holdout])


@flax.struct.dataclass
class DynamicsState:
    """Everything the ensemble learns, plus the input normaliser and elites.

    Attributes:
        params: member-stacked parameters (leading axis N).
        opt_state: Adam state.
        input_mean, input_std: [obs_dim + act_dim] dataset statistics.
        elites: [num_elites] int32 member indices used in rollouts.
        step: int32 number of updates applied.
        best_params: per-member snapshots at their best held-out MSE
            (early stopping; the initial parameters until the first check).
        best_val_mse: [N] the held-out MSE of each snapshot (inf before).
        stale_checks: int32 consecutive checks that improved no member.
    """

    params: dict
    opt_state: optax.OptState
    input_mean: jax.Array
    input_std: jax.Array
    elites: jax.Array
    step: jax.Array
    best_params: dict
    best_val_mse: jax.Array
    stale_checks: jax.Array


class Dynamics(NamedTuple):
    """The pure functions of a dynamics ensemble."""

    config: DynamicsConfig
    network: GaussianMLP
    init: Callable[[jax.Array, DynamicsData], DynamicsState]
    update: Callable[[DynamicsState, DynamicsData, jax.Array], tuple[DynamicsState, Metrics]]
    predict: Callable[[DynamicsState, jax.Array, jax.Array], tuple[jax.Array, jax.Array]]
    validate: Callable[[DynamicsState, DynamicsData], Metrics]
    select_elites: Callable[[DynamicsState, DynamicsData], DynamicsState]
    # Early stopping: record improved members' snapshots; swap them in.
    track_best: Callable[[DynamicsState, DynamicsData], DynamicsState]
    use_best: Callable[[DynamicsState], DynamicsState]


def gaussian_nll(mean: jax.Array, logvar: jax.Array, target: jax.Array) -> jax.Array:
    """Per-row NLL of a diagonal Gaussian, summed over dims: [..., D] -> [...]."""
    return 0.5 * jnp.sum(
        jnp.square(target - mean) * jnp.exp(-logvar) + logvar + jnp.log(2.0 * jnp.pi), axis=-1
    )


def make_dynamics(obs_dim: int, act_dim: int, config: DynamicsConfig = DynamicsConfig()) -> Dynamics:
    """Builds the ensemble's pure functions for the given dimensions."""
    cfg = config
    if not 1 <= cfg.num_elites <= cfg.num_members:
        raise ValueError(
            f"dynamics.num_elites={cfg.num_elites} must be between 1 and "
            f"dynamics.num_members={cfg.num_members}."
        )
    input_dim, output_dim = obs_dim + act_dim, obs_dim + 1
    network = GaussianMLP(
        output_dim=output_dim,
        hidden_dims=tuple(cfg.hidden_dims),
        init_max_logvar=cfg.init_max_logvar,
        init_min_logvar=cfg.init_min_logvar,
    )
    # Decay dense kernels only: biases and the log-variance bounds are free.
    decay_mask = lambda params: jax.tree_util.tree_map_with_path(  # noqa: E731
        lambda path, _: path[-1].key == "kernel", params
    )
    optimizer = optax.chain(
        optax.masked(optax.add_decayed_weights(cfg.weight_decay), decay_mask),
        optax.adam(cfg.learning_rate),
    )
    # Members with their own parameters: (params [N, ...], x [N, ..., in]).
    apply_each = jax.vmap(network.apply)
    # All members on the same inputs: (params [N, ...], x [..., in]).
    apply_shared = jax.vmap(network.apply, in_axes=(0, None))

    def init(key: jax.Array, data: DynamicsData) -> DynamicsState:
        """``data``: the training inputs, for the normaliser statistics."""
        keys = jax.random.split(key, cfg.num_members)
        params = jax.vmap(network.init, in_axes=(0, None))(keys, jnp.zeros((1, input_dim)))
        mean = jnp.mean(data.inputs, axis=0)
        std = jnp.std(data.inputs, axis=0)
        # Constant inputs (std 0) pass through centred instead of dividing by 0.
        std = jnp.where(std < 1e-6, 1.0, std)
        return DynamicsState(
            params=params,
            opt_state=optimizer.init(params),
            input_mean=mean,
            input_std=std,
            elites=jnp.arange(cfg.num_elites, dtype=jnp.int32),
            step=jnp.zeros((), jnp.int32),
            best_params=params,
            best_val_mse=jnp.full((cfg.num_members,), jnp.inf, jnp.float32),
            stale_checks=jnp.zeros((), jnp.int32),
        )

    def normalise(state: DynamicsState, inputs: jax.Array) -> jax.Array:
        return (inputs - state.input_mean) / state.input_std

    def loss_fn(params, state: DynamicsState, batch: DynamicsData):
        mean, logvar = apply_each(params, normalise(state, batch.inputs))  # [N, B, D]
        reduce_dims = jnp.sum if cfg.nll_reduction == "sum" else jnp.mean
        nll = jnp.mean(
            reduce_dims(jnp.square(batch.targets - mean) * jnp.exp(-logvar) + logvar, axis=-1),
            axis=-1,
        )  # [N]: the training objective (NLL up to constants), per member
        bounds = params["params"]
        bound_penalty = cfg.bound_coef * (
            jnp.sum(bounds["max_logvar"]) - jnp.sum(bounds["min_logvar"])
        )
        loss = jnp.sum(nll) + bound_penalty
        mse = jnp.mean(jnp.square(batch.targets - mean))
        return loss, {"dynamics_loss": loss, "train_mse": mse, "train_nll_mean": jnp.mean(nll)}

    def update(state: DynamicsState, batch: DynamicsData, key: jax.Array):
        """One step; ``batch`` fields are [N, B, ...]: each member its own rows.

        ``key`` is unused (the update is deterministic given the batch) but
        kept for the library's common ``update(state, batch, key)`` signature.
        """
        del key
        (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, state, batch)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics["dynamics_grad_norm"] = optax.global_norm(grads)
        return state.replace(params=params, opt_state=opt_state, step=state.step + 1), metrics

    def predict(state: DynamicsState, observations: jax.Array, actions: jax.Array):
        """Every member's Gaussian at (s, a).

        Args:
            observations: [..., obs_dim]; actions: [..., act_dim].

        Returns:
            (mean, logvar), each [N, ..., obs_dim + 1]: (delta s, r).
        """
        inputs = jnp.concatenate([observations, actions], axis=-1)
        return apply_shared(state.params, normalise(state, inputs))

    def validate(state: DynamicsState, holdout: DynamicsData) -> Metrics:
        """Per-member held-out MSE and NLL, each [N]."""
        mean, logvar = apply_shared(state.params, normalise(state, holdout.inputs))
        return {
            "val_mse": jnp.mean(jnp.square(holdout.targets - mean), axis=(1, 2)),
            "val_nll": jnp.mean(gaussian_nll(mean, logvar, holdout.targets), axis=1),
        }

    def select_elites(state: DynamicsState, holdout: DynamicsData) -> DynamicsState:
        """Keeps the ``num_elites`` members with the lowest held-out MSE."""
        mse = validate(state, holdout)["val_mse"]
        elites = jnp.sort(jnp.argsort(mse)[: cfg.num_elites]).astype(jnp.int32)
        return state.replace(elites=elites)

    def track_best(state: DynamicsState, holdout: DynamicsData) -> DynamicsState:
        """One early-stopping check (MOPO): members whose held-out MSE beat
        their best by more than ``improvement_threshold`` (relative) snapshot
        their parameters; ``stale_checks`` counts checks improving none."""
        mse = validate(state, holdout)["val_mse"]  # [N]
        improved = (state.best_val_mse - mse) / state.best_val_mse > cfg.improvement_threshold
        improved = improved | ~jnp.isfinite(state.best_val_mse)
        keep = lambda new, old: jnp.where(  # noqa: E731
            improved.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)
        return state.replace(
            best_params=jax.tree.map(keep, state.params, state.best_params),
            best_val_mse=jnp.where(improved, mse, state.best_val_mse),
            stale_checks=jnp.where(jnp.any(improved), 0, state.stale_checks + 1).astype(jnp.int32),
        )

    def use_best(state: DynamicsState) -> DynamicsState:
        """The snapshots become the model (after the last check). A member
        never checked (no finite best) keeps its current parameters, so a
        state trained without checks (e.g. restored from another run) is not
        replaced by its initialisation."""
        checked = jnp.isfinite(state.best_val_mse)
        pick = lambda best, now: jnp.where(  # noqa: E731
            checked.reshape((-1,) + (1,) * (best.ndim - 1)), best, now)
        return state.replace(params=jax.tree.map(pick, state.best_params, state.params))

    return Dynamics(cfg, network, init, update, predict, validate, select_elites, track_best,
                    use_best)


def make_train_steps(
    update: Callable[[DynamicsState, DynamicsData, jax.Array], tuple[DynamicsState, Metrics]],
    num_members: int,
    batch_size: int,
    num_steps: int,
) -> Callable[[DynamicsState, DynamicsData, jax.Array], tuple[DynamicsState, Metrics]]:
    """``num_steps`` updates as one jitted ``lax.scan``; each member draws its
    own ``batch_size`` rows uniformly (with replacement) every step.

    Returns ``train_steps(state, train_data, key) -> (state, chunk metrics)``
    (:func:`mb2po_jax.training.make_train_steps`).
    """

    def sample(data: DynamicsData, key: jax.Array) -> DynamicsData:
        idx = jax.random.randint(key, (num_members, batch_size), 0, data.inputs.shape[0])
        return jax.tree.map(lambda x: x[idx], data)

    return make_scanned_steps(update, sample, num_steps)


def elite_summary(metrics: Metrics) -> dict[str, float]:
    """Flattens per-member validation arrays into scalars for logging."""
    out = {}
    for name, values in metrics.items():
        values = np.asarray(values)
        out[f"{name}_mean"] = float(values.mean())
        for i, value in enumerate(values):
            out[f"{name}_{i}"] = float(value)
    return out
