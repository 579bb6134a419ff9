"""AWAC (Nair et al., 2020; a.k.a. CRR-exp) with the paper's distributional critic.

Paper section 4.2 and appendix 7.1. One update is

* critic: quantile regression (QR-DQN) with the quantile-Huber loss (kappa=1,
  quantile midpoints), learned in the space of Pohlen's transform h; clipped
  double Q with double-DQN selection; soft target update;
* policy: advantage-weighted regression,
  ``-E_{(s,a)~D}[log pi(a|s) * min(exp(A(s,a)/alpha), 20)]``,
  ``A(s,a) = Q(s,a) - mean_{j=1..10} Q(s, a_j), a_j ~ pi(.|s)``.

How we read the paper where it is terse (choices documented here on purpose):

1. *Critic target.* For each sample, a' ~ pi(.|s') is drawn from the current
   policy. Both ONLINE critics evaluate (s', a'); the member whose mean return
   ``mean_i h^-1(Z_i)`` is lower is selected per sample (clipped double Q,
   Fujimoto et al.), and that member's TARGET-network quantiles are
   bootstrapped (double DQN, van Hasselt et al.: select with online, evaluate
   with target). Target quantiles are ``h(r + gamma (1 - terminal) h^-1(z'_j))``
   for each of the 100 target quantiles z'_j; both members regress onto the
   same target. Timeouts bootstrap (only true terminals cut the return).
2. *Q for the advantage* (``advantage_space``). The paper sets alpha = 1 and
   clamps exp(A / alpha) at 20 (AWAC, CRR) without saying in which space
   A = Q - V is taken once the critic learns in the space of Pohlen's h.
   ``"return"`` (default): Q is ``min over members of mean over quantiles of
   h^-1(Z)``, the mean of the return distribution, pessimistic over members
   (the unbiased mean; returns of order 100 make alpha = 1 near-greedy).
   ``"h"``: Q is ``min over members of mean over quantiles of Z``, the
   critic's own output before h^-1, which is what a CRR-style implementation
   that adds the transform to an existing critic computes (Acme's CRR takes
   the advantage from the critic's output); since h'(Q) ~ 0.04-0.07 at
   Q ~ 80-240, alpha = 1 there is alpha ~ 15-24 in return space. Both spaces'
   weight statistics are logged whichever drives the update
   (``weight_ess_return`` / ``weight_ess_h`` and the clamp fractions).
3. *Which critic the policy sees.* The advantage uses the critic parameters
   from before this step's critic update, and the policy samples a_j from the
   pre-update policy: all losses of a step are computed from the same
   parameters and then both optimisers step, as the reference AWAC
   implementation (rlkit) orders it. This also lets the policy step reuse
   Q(s, a) from the critic's forward pass.
4. *Weight decay.* The policy's 1e-4 weight decay is coupled L2 (added to the
   gradient before Adam, like ``torch.optim.Adam(weight_decay=...)``), not
   AdamW; the critic has none.

Everything here is pure. The losses are module-level functions of
``(params, state, batch, key, nets)`` (importable, e.g. by the benchmarks);
:func:`make_awac` closes over static hyperparameters and network definitions
and returns the agent interface (:mod:`mb2po_jax.agents`): ``init(key) ->
state``, ``update(state, batch, key) -> (state, metrics)``, ``act``,
``sample_action``, ``policy_params``, ``q_value``; :func:`make_train_steps`
wraps K updates (batch sampling included) into one ``lax.scan``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, NamedTuple, Sequence

import flax.struct
import jax
import jax.numpy as jnp
import optax

from mb2po_jax import networks, value_transform
from mb2po_jax.transitions import Transitions, sample_batch
from mb2po_jax.quantile_loss import quantile_huber_loss
from mb2po_jax.training import config_from_mapping, optimizer_step
from mb2po_jax.training import make_train_steps as make_scanned_steps

Metrics = dict[str, jax.Array]
TARGET_SELECTIONS = ("online_min", "target_min")
ADVANTAGE_SPACES = ("return", "h")
CRITIC_NORMS = ("none", "layernorm")


@dataclasses.dataclass(frozen=True)
class AWACConfig:
    """Hyperparameters. Defaults are the paper's (appendix 7.1)."""

    discount: float = 0.99
    tau: float = 5e-3  # soft target update rate
    alpha: float = 1.0  # AWAC temperature
    max_weight: float = 20.0  # clamp on exp(A / alpha)
    num_advantage_samples: int = 10
    policy_lr: float = 3e-4
    critic_lr: float = 3e-4
    policy_weight_decay: float = 1e-4
    hidden_dims: Sequence[int] = (256, 256, 256, 256)
    num_critics: int = 2
    num_quantiles: int = 100
    num_components: int = 5
    huber_kappa: float = 1.0
    transform_eps: float = 1e-2
    # Rows of the [2B, 100] quantile-Huber loss processed at a time (speed and
    # memory only; the result does not depend on it beyond float rounding).
    # Since the loss accumulates over targets instead of materialising the
    # [2B, 100, 100] pairs, 256 / 1024 / unchunked measure the same within
    # noise on 2 CPU cores (docs/benchmarks.md).
    loss_chunk_size: int = 256
    # Which member's target quantiles are bootstrapped, per sample:
    # "online_min" (default; the paper's clipped double Q read with double-DQN
    # selection: the member whose ONLINE mean return is lower, its target
    # quantiles) or "target_min" (TD3: the member whose TARGET mean return is
    # lower). A named deviation for ablation (docs/results.md).
    target_selection: str = "online_min"
    # Upper bound on each mixture component's log-std (the paper is silent;
    # rlkit's AWAC uses 0). Wide components put saturated tanh actions into
    # the advantage baseline and the model rollouts.
    log_std_max: float = 2.0
    # The space in which A = Q - V is taken (module doc, reading 2): "return"
    # (default: the mean of h^-1(Z)) or "h" (the mean of the critic's h-space
    # quantiles Z). A named reading for ablation (docs/results.md).
    advantage_space: str = "return"
    # Normalisation inside each critic member: "none" (the paper) or
    # "layernorm" (LayerNorm after each hidden layer, JAX-CORL's critic), a
    # named deviation against the critic runaway on dataset rows.
    critic_norm: str = "none"
    # Advantage-baseline samples per critic call (speed only: the baseline is
    # the same mean over num_advantage_samples actions, up to float rounding).
    # 1: one [B]-row call per sample (lax.map), best at the paper's B = 1024
    # on CPU; more samples per call make bigger matmuls for small batches.
    advantage_samples_per_call: int = 1

    def __post_init__(self):
        if self.target_selection not in TARGET_SELECTIONS:
            raise ValueError(
                f"awac.target_selection={self.target_selection!r}: valid choices are "
                f"{list(TARGET_SELECTIONS)}.")
        for field, value, valid in (("advantage_space", self.advantage_space, ADVANTAGE_SPACES),
                                    ("critic_norm", self.critic_norm, CRITIC_NORMS)):
            if value not in valid:
                raise ValueError(f"awac.{field}={value!r}: valid choices are {list(valid)}.")
        per_call = self.advantage_samples_per_call
        if per_call < 1 or self.num_advantage_samples % per_call:
            raise ValueError(
                f"awac.advantage_samples_per_call={per_call}: must be >= 1 and divide "
                f"awac.num_advantage_samples={self.num_advantage_samples}.")

    @classmethod
    def from_dict(cls, values, run_fields=("num_steps", "batch_size")) -> "AWACConfig":
        """From a mapping (the config's ``awac`` section); keys other than
        these hyperparameters and ``run_fields`` are refused."""
        return config_from_mapping(cls, values, section="awac", run_fields=run_fields)


@flax.struct.dataclass
class AWACState:
    """Everything AWAC learns; a pytree (checkpointable, scannable)."""

    policy_params: dict
    policy_opt_state: optax.OptState
    critic_params: dict
    critic_target_params: dict
    critic_opt_state: optax.OptState
    step: jax.Array  # int32 scalar, number of updates applied


class AWAC(NamedTuple):
    """The pure functions and static pieces of an AWAC agent."""

    config: AWACConfig
    policy: networks.TanhGMMPolicy
    critic: networks.QuantileCriticEnsemble
    init: Callable[[jax.Array], AWACState]
    update: Callable[[AWACState, Transitions, jax.Array], tuple[AWACState, Metrics]]
    act: Callable[[dict, jax.Array], jax.Array]  # deterministic evaluation action
    # a ~ pi(.|s) with one key per row: (policy_params, obs [B, obs_dim],
    # keys [B, 2]) -> [B, act_dim] (model rollouts; independent of blocking).
    sample_action: Callable[[dict, jax.Array, jax.Array], jax.Array]
    policy_params: Callable[[AWACState], dict]
    # Q(s, a) as the policy sees it (min over members of the mean return):
    # (critic_params, obs [B, obs_dim], actions [B, act_dim]) -> [B].
    q: Callable[[dict, jax.Array, jax.Array], jax.Array]
    # The same from a whole state (the agent interface's diagnostics hook).
    q_value: Callable[[AWACState, jax.Array, jax.Array], jax.Array]
    # The policy step's AWR weights of given rows: (state, obs [B, obs_dim],
    # actions [B, act_dim], key) -> [B] (fine-tuning's dataset vs model rows).
    awr_weights: Callable[[AWACState, jax.Array, jax.Array, jax.Array], jax.Array]


def q_values(critic_quantiles: jax.Array, eps: float) -> jax.Array:
    """Per-member mean return: [M, ..., N] h-space quantiles -> [M, ...]."""
    return jnp.mean(value_transform.h_inv(critic_quantiles, eps), axis=-1)


def critic_target(
    online_next: jax.Array,
    target_next: jax.Array,
    rewards: jax.Array,
    terminals: jax.Array,
    discount: float,
    eps: float,
    selection: str = "online_min",
) -> jax.Array:
    """Distributional TD target with clipped double-Q / double-DQN selection.

    Args:
        online_next: [M, B, N] online critics' quantiles at (s', a').
        target_next: [M, B, N] target critics' quantiles at (s', a').
        rewards, terminals: [B].
        selection: "online_min" selects, per sample, the member whose online
            mean return is lowest; "target_min" the member whose target mean
            return is lowest (TD3's minimum over target critics).

    Returns:
        [B, N] target quantiles in h-space.
    """
    if selection not in TARGET_SELECTIONS:
        raise ValueError(f"selection={selection!r}: valid choices are {list(TARGET_SELECTIONS)}.")
    selector = online_next if selection == "online_min" else target_next
    selected = jnp.argmin(q_values(selector, eps), axis=0)  # [B]
    z_next = jnp.take_along_axis(target_next, selected[None, :, None], axis=0)[0]
    returns = rewards[:, None] + discount * (1.0 - terminals[:, None]) * value_transform.h_inv(
        z_next, eps
    )
    return value_transform.h(returns, eps)


def advantage_weights(advantages: jax.Array, alpha: float, max_weight: float) -> jax.Array:
    """min(exp(A / alpha), max_weight), computed without overflowing exp."""
    return jnp.exp(jnp.minimum(advantages / alpha, jnp.log(max_weight)))


def weight_statistics(weights: jax.Array, max_weight: float) -> Metrics:
    """How greedy a batch's AWR weights [B] are: the clamp fraction, the
    effective sample size (sum w)^2 / (B sum w^2) (1: every row counts alike;
    1/B: one row carries the step) and the 5/50/95 % quantiles."""
    q05, q50, q95 = jnp.quantile(weights, jnp.array([0.05, 0.5, 0.95]))
    return {
        "weight_mean": jnp.mean(weights),
        "weight_clip_fraction": jnp.mean(weights >= max_weight * (1 - 1e-6)),
        "weight_ess": jnp.sum(weights) ** 2 / (weights.shape[0] * jnp.sum(weights ** 2)),
        "weight_q05": q05,
        "weight_q50": q50,
        "weight_q95": q95,
    }


class CriticMeans(NamedTuple):
    """The pessimistic Q of a batch in both spaces the advantage can take:
    ``returns`` = min over members of mean h^-1(Z), ``h`` = min over members
    of mean Z; each [B]."""

    returns: jax.Array
    h: jax.Array

    def space(self, name: str) -> jax.Array:
        return self.returns if name == "return" else self.h


class Networks(NamedTuple):
    """AWAC's static pieces the losses need: the two network definitions and
    the hyperparameters."""

    config: AWACConfig
    policy: networks.TanhGMMPolicy
    critic: networks.QuantileCriticEnsemble


def pessimistic_q(nets: Networks, critic_params, observations: jax.Array,
                  actions: jax.Array) -> jax.Array:
    """Min over members of the mean return: [B, obs_dim], [B, act_dim] -> [B]."""
    return jnp.min(q_values(nets.critic.apply(critic_params, observations, actions),
                            nets.config.transform_eps), axis=0)


def critic_means(quantiles: jax.Array, eps: float) -> CriticMeans:
    """[M, B, N] h-space quantiles -> :class:`CriticMeans` (no gradient)."""
    quantiles = jax.lax.stop_gradient(quantiles)
    return CriticMeans(returns=jnp.min(q_values(quantiles, eps), axis=0),
                       h=jnp.min(jnp.mean(quantiles, axis=-1), axis=0))


def critic_loss(critic_params, state: AWACState, batch: Transitions, key: jax.Array,
                nets: Networks):
    """Quantile-Huber TD loss of both members (module doc, reading 1).

    Returns:
        ``(loss, (q_data, metrics))``; ``q_data`` (:class:`CriticMeans`) is
        the pessimistic Q of the batch's own actions, which the policy step
        reuses.
    """
    cfg, policy, critic = nets
    next_actions = networks.sample(policy.apply(state.policy_params, batch.next_observations), key)
    online_next = critic.apply(critic_params, batch.next_observations, next_actions)
    target_next = critic.apply(state.critic_target_params, batch.next_observations, next_actions)
    target = jax.lax.stop_gradient(
        critic_target(
            online_next, target_next, batch.rewards, batch.terminals, cfg.discount,
            cfg.transform_eps, cfg.target_selection,
        )
    )
    pred = critic.apply(critic_params, batch.observations, batch.actions)  # [M, B, N]
    members, rows, n = pred.shape
    per_row = quantile_huber_loss(
        pred.reshape(members * rows, n),
        jnp.tile(target, (members, 1)),
        cfg.huber_kappa,
        cfg.loss_chunk_size,
    )
    # Mean over the batch, summed over the members (each member's own loss).
    loss = jnp.sum(jnp.mean(per_row.reshape(members, rows), axis=1))
    q_data = critic_means(pred, cfg.transform_eps)
    aux = {
        "critic_loss": loss,
        "q_data_mean": jnp.mean(q_data.returns),
        "q_data_max": jnp.max(q_data.returns),
        "target_return_mean": jnp.mean(value_transform.h_inv(target, cfg.transform_eps)),
    }
    return loss, (q_data, aux)


def value_baseline(nets: Networks, critic_params, observations: jax.Array, dist_params,
                   key: jax.Array) -> CriticMeans:
    """V(s) = mean_j Q(s, a_j) over ``num_advantage_samples`` actions a_j drawn
    from ``dist_params`` (the policy at ``observations`` [B, obs_dim]), in
    both spaces: :class:`CriticMeans` of [B] each."""
    cfg = nets.config
    sampled = networks.sample(dist_params, key, cfg.num_advantage_samples)  # [K, B, A]
    # By default one critic call per sample (lax.map) rather than one call on
    # K*B rows: each [B, 256] activation stays in cache. Measured on 2 AMD
    # EPYC (Zen 4) cores at B = 1024: 48-50 ms (~90 % of the 2048^2 matmul
    # peak) vs 75 ms for the single 10240-row call (docs/benchmarks.md).
    # ``advantage_samples_per_call = m`` makes K / m calls on m*B rows.
    k, per_call = cfg.num_advantage_samples, cfg.advantage_samples_per_call
    batch_size, act_dim = sampled.shape[1], sampled.shape[2]
    tiled = jnp.tile(observations, (per_call, 1))  # [m*B, S]
    q_pi = jax.lax.map(
        lambda actions: critic_means(nets.critic.apply(critic_params, tiled, actions),
                                     cfg.transform_eps),
        sampled.reshape(k // per_call, per_call * batch_size, act_dim),
    )
    return jax.tree.map(lambda x: jnp.mean(x.reshape(k, batch_size), axis=0), q_pi)


def policy_loss(policy_params, state: AWACState, batch: Transitions, q_data: CriticMeans,
                key: jax.Array, nets: Networks):
    """Advantage-weighted regression; q_data: Q(s, a) of the dataset actions
    (pre-update critic, both spaces). Returns ``(loss, metrics)``."""
    cfg, policy = nets.config, nets.policy
    dist_params = policy.apply(policy_params, batch.observations)
    # Baseline V(s) = mean_j Q(s, a_j) from the pre-update policy, with no
    # gradient (the AWR weight is a constant for the policy step).
    baseline = value_baseline(nets, state.critic_params, batch.observations,
                              jax.lax.stop_gradient(dist_params), key)
    # Both spaces' advantages and weights; ``advantage_space`` picks the one
    # the step uses, the other is an instrument only.
    metrics = {}
    for space in ADVANTAGE_SPACES:
        adv = q_data.space(space) - baseline.space(space)
        w = advantage_weights(adv, cfg.alpha, cfg.max_weight)
        stats = weight_statistics(w, cfg.max_weight)
        metrics[f"advantage_std_{space}"] = jnp.std(adv)
        metrics[f"weight_ess_{space}"] = stats["weight_ess"]
        metrics[f"weight_clip_fraction_{space}"] = stats["weight_clip_fraction"]
        if space == cfg.advantage_space:
            advantages, weights, active = adv, jax.lax.stop_gradient(w), stats
    log_probs = networks.log_prob(dist_params, batch.actions)
    loss = -jnp.mean(log_probs * weights)
    aux = {
        "policy_loss": loss,
        "advantage_mean": jnp.mean(advantages),
        "advantage_std": jnp.std(advantages),
        **active,
        **metrics,
        "log_prob_mean": jnp.mean(log_probs),
    }
    return loss, aux


def advantage_weights_of(nets: Networks, state: AWACState, observations: jax.Array,
                         actions: jax.Array, key: jax.Array) -> jax.Array:
    """The policy step's weights min(exp(A / alpha), max_weight) of given
    rows ([B] from [B, obs_dim], [B, act_dim]), in the configured space, as
    :func:`policy_loss` computes them (an instrument: dataset vs model rows)."""
    cfg = nets.config
    q = critic_means(nets.critic.apply(state.critic_params, observations, actions),
                     cfg.transform_eps)
    baseline = value_baseline(nets, state.critic_params, observations,
                              nets.policy.apply(state.policy_params, observations), key)
    space = cfg.advantage_space
    return advantage_weights(q.space(space) - baseline.space(space), cfg.alpha, cfg.max_weight)


def make_awac(obs_dim: int, act_dim: int, config: AWACConfig = AWACConfig()) -> AWAC:
    """Builds the AWAC agent's pure functions for the given dimensions."""
    cfg = config
    policy = networks.TanhGMMPolicy(
        action_dim=act_dim, hidden_dims=tuple(cfg.hidden_dims), num_components=cfg.num_components,
        log_std_max=cfg.log_std_max,
    )
    critic = networks.QuantileCriticEnsemble(
        num_members=cfg.num_critics,
        hidden_dims=tuple(cfg.hidden_dims),
        num_quantiles=cfg.num_quantiles,
        layer_norm=cfg.critic_norm == "layernorm",
    )
    policy_opt = optax.chain(
        optax.add_decayed_weights(cfg.policy_weight_decay), optax.adam(cfg.policy_lr)
    )
    critic_opt = optax.adam(cfg.critic_lr)

    def init(key: jax.Array) -> AWACState:
        policy_key, critic_key = jax.random.split(key)
        obs = jnp.zeros((1, obs_dim), jnp.float32)
        act = jnp.zeros((1, act_dim), jnp.float32)
        policy_params = policy.init(policy_key, obs)
        critic_params = critic.init(critic_key, obs, act)
        return AWACState(
            policy_params=policy_params,
            policy_opt_state=policy_opt.init(policy_params),
            critic_params=critic_params,
            critic_target_params=critic_params,
            critic_opt_state=critic_opt.init(critic_params),
            step=jnp.zeros((), jnp.int32),
        )

    nets = Networks(cfg, policy, critic)

    def q(critic_params, observations: jax.Array, actions: jax.Array) -> jax.Array:
        """Pessimistic mean return: [B, obs_dim], [B, act_dim] -> [B]."""
        return pessimistic_q(nets, critic_params, observations, actions)

    def update(state: AWACState, batch: Transitions, key: jax.Array) -> tuple[AWACState, Metrics]:
        """One AWAC step on a batch of B transitions (all fields [B, ...])."""
        critic_key, policy_key = jax.random.split(key)
        (_, (q_data, critic_aux)), critic_grads = jax.value_and_grad(
            functools.partial(critic_loss, nets=nets), has_aux=True
        )(state.critic_params, state, batch, critic_key)
        (_, policy_aux), policy_grads = jax.value_and_grad(
            functools.partial(policy_loss, nets=nets), has_aux=True
        )(state.policy_params, state, batch, q_data, policy_key)
        critic_params, critic_opt_state = optimizer_step(
            critic_opt, critic_grads, state.critic_opt_state, state.critic_params)
        policy_params, policy_opt_state = optimizer_step(
            policy_opt, policy_grads, state.policy_opt_state, state.policy_params)
        target_params = optax.incremental_update(critic_params, state.critic_target_params, cfg.tau)
        new_state = AWACState(
            policy_params=policy_params,
            policy_opt_state=policy_opt_state,
            critic_params=critic_params,
            critic_target_params=target_params,
            critic_opt_state=critic_opt_state,
            step=state.step + 1,
        )
        metrics = {
            **critic_aux,
            **policy_aux,
            "critic_grad_norm": optax.global_norm(critic_grads),
            "policy_grad_norm": optax.global_norm(policy_grads),
        }
        return new_state, metrics

    def act(policy_params, observations: jax.Array) -> jax.Array:
        """Deterministic action for evaluation ([..., obs_dim] -> [..., act_dim])."""
        return networks.deterministic_action(policy.apply(policy_params, observations))

    def sample_action(policy_params, observations: jax.Array, keys: jax.Array) -> jax.Array:
        """a ~ pi(.|s) per row: [B, obs_dim], keys [B, 2] -> [B, act_dim]."""
        return networks.sample_per_row(policy, policy_params, observations, keys)

    return AWAC(
        config=cfg, policy=policy, critic=critic, init=init, update=update, act=act,
        sample_action=sample_action, policy_params=lambda state: state.policy_params, q=q,
        q_value=lambda state, obs, actions: q(state.critic_params, obs, actions),
        awr_weights=functools.partial(advantage_weights_of, nets),
    )


def make_train_steps(
    update: Callable[[AWACState, Transitions, jax.Array], tuple[AWACState, Metrics]],
    batch_size: int,
    num_steps: int,
) -> Callable[[AWACState, Transitions, jax.Array], tuple[AWACState, Metrics]]:
    """``num_steps`` updates on uniformly sampled dataset batches, one ``lax.scan``
    (:func:`mb2po_jax.training.make_train_steps`): a jitted
    ``train_steps(state, dataset, key) -> (state, chunk metrics)``."""
    return make_scanned_steps(update, lambda data, key: sample_batch(data, key, batch_size),
                              num_steps)
