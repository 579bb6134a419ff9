"""Soft Actor-Critic (Haarnoja et al., 2018a/b): the behaviour learner that makes
the D4RL-style datasets (:mod:`mb2po_jax.datagen`) and MOPO's agent.

D4RL's Gym-MuJoCo datasets were collected by SAC policies (random: its
initialisation; medium: partially trained; expert: fully trained; mixed: its
replay buffer up to the medium policy), so the project trains SAC too. The
hyperparameters are SAC's standard MuJoCo values (Haarnoja et al. 2018b,
table 1, as in rlkit, which D4RL used):

=====================  ====================================================
networks               actor and two critics, 2 x 256 ReLU (:class:`networks.MLP`)
optimiser              Adam, lr 3e-4 (actor, critics and temperature)
batch size             256 (set by the caller, :func:`make_train_steps`)
discount gamma         0.99
target smoothing tau   5e-3 (Polyak averaging of the critics every update)
temperature            auto-tuned, initial alpha 1.0
target entropy         -act_dim
log std range          [-20, 2] (clipped), as softlearning/rlkit
=====================  ====================================================

One update computes, on a batch of B transitions (s, a, r, s', terminal):

* critic (each of the two critics i, textbook J_Q):
  ``L_Q = sum_i mean_B 0.5 (Q_i(s, a) - y)^2``,
  ``y = r + gamma (1 - terminal) (min_j Qbar_j(s', a') - alpha log pi(a'|s'))``,
  ``a' ~ pi(.|s')`` from the current actor, ``Qbar`` the target critics.
  Truncated (time-limit) transitions bootstrap; only true terminals cut y.
* actor (J_pi): ``L_pi = mean_B [alpha log pi(a~|s) - min_i Q_i(s, a~)]`` with
  ``a~ = tanh(mu(s) + sigma(s) * eps)`` reparameterised, alpha held constant.
* temperature (J(alpha), eq. 18 of 2018b):
  ``L_alpha = mean_B [-alpha (log pi(a~|s) + target_entropy)]``, optimised in
  ``log alpha`` (alpha = exp(log alpha) stays positive), log pi held constant.

All three losses are computed from the same (pre-update) parameters and the
three optimisers then step together, as in the reference (softlearning)
implementation and as :mod:`mb2po_jax.agents.awac` orders its losses; then the target
critics move ``tau`` towards the updated critics.

Key use inside :func:`SAC.update` (documented so tests can replay it):
``next_key, actor_key = jax.random.split(key)``; the critic target samples a'
with ``next_key``, the actor and temperature losses share the sample a~ drawn
with ``actor_key``; each sample is ``tanh(mu + sigma * normal(k, mu.shape))``.

Everything is pure: :func:`make_sac` closes over static hyperparameters and
returns ``init(key) -> state`` and ``update(state, batch, key) -> (state,
metrics)``; :func:`make_train_steps` runs K updates on batches sampled from
the filled part of a replay buffer as one ``lax.scan``.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable, NamedTuple, Sequence

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax

from mb2po_jax.networks import MLP
from mb2po_jax.training import config_from_mapping, optimizer_step
from mb2po_jax.training import make_train_steps as make_scanned_steps
from mb2po_jax.transitions import Transitions, sample_prefix

Metrics = dict[str, jax.Array]


@dataclasses.dataclass(frozen=True)
class SACConfig:
    """Hyperparameters; the defaults are SAC's standard MuJoCo values (module doc)."""

    discount: float = 0.99
    tau: float = 5e-3
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    temperature_lr: float = 3e-4
    hidden_dims: Sequence[int] = (256, 256)
    num_critics: int = 2
    init_temperature: float = 1.0
    # None: -act_dim (the usual heuristic, one nat per action dimension).
    target_entropy: float | None = None
    log_std_min: float = -20.0
    log_std_max: float = 2.0

    @classmethod
    def from_dict(cls, values, run_fields=()) -> "SACConfig":
        """From a mapping; keys other than these hyperparameters and
        ``run_fields`` are refused."""
        config = config_from_mapping(cls, values, section="sac", run_fields=run_fields)
        return dataclasses.replace(config, hidden_dims=tuple(int(w) for w in config.hidden_dims))

    def to_dict(self) -> dict:
        out = dataclasses.asdict(self)
        out["hidden_dims"] = list(self.hidden_dims)
        return out


class TanhGaussianActor(nn.Module):
    """pi(a|s) = tanh(N(mu(s), diag sigma(s)^2)); returns (mu, log sigma), each
    [..., act_dim], with log sigma clipped to [log_std_min, log_std_max]."""

    action_dim: int
    hidden_dims: Sequence[int] = (256, 256)
    log_std_min: float = -20.0
    log_std_max: float = 2.0

    @nn.compact
    def __call__(self, observations: jax.Array) -> tuple[jax.Array, jax.Array]:
        out = MLP(self.hidden_dims, 2 * self.action_dim)(observations)
        mean, log_std = jnp.split(out, 2, axis=-1)
        return mean, jnp.clip(log_std, self.log_std_min, self.log_std_max)


class TwinCritic(nn.Module):
    """``num_members`` independent Q(s, a) MLPs, vmapped over stacked parameters:
    [..., obs_dim], [..., act_dim] -> [num_members, ...]."""

    num_members: int = 2
    hidden_dims: Sequence[int] = (256, 256)

    @nn.compact
    def __call__(self, observations: jax.Array, actions: jax.Array) -> jax.Array:
        ensemble = nn.vmap(
            MLP,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.num_members,
        )
        x = jnp.concatenate([observations, actions], axis=-1)
        return ensemble(tuple(self.hidden_dims), 1)(x)[..., 0]


def tanh_gaussian_log_prob(mean: jax.Array, log_std: jax.Array, pre_tanh: jax.Array) -> jax.Array:
    """log pi(tanh(u)) for pre-tanh samples u: [..., act_dim] -> [...].

    The Gaussian log density minus the tanh Jacobian ``sum log(1 - tanh(u)^2)``,
    the latter in the overflow-free form ``2 (log 2 - u - softplus(-2u))``.
    """
    z = (pre_tanh - mean) * jnp.exp(-log_std)
    gaussian = -0.5 * z**2 - log_std - 0.5 * jnp.log(2.0 * jnp.pi)
    log_det = 2.0 * (jnp.log(2.0) - pre_tanh - jax.nn.softplus(-2.0 * pre_tanh))
    return jnp.sum(gaussian - log_det, axis=-1)


def sample_tanh_gaussian(
    mean: jax.Array, log_std: jax.Array, key: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """Reparameterised sample ``a = tanh(mean + std * eps)`` and its log pi(a)."""
    pre_tanh = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)
    return jnp.tanh(pre_tanh), tanh_gaussian_log_prob(mean, log_std, pre_tanh)


@flax.struct.dataclass
class SACState:
    """Everything SAC learns; a pytree (checkpointable, scannable)."""

    actor_params: dict
    actor_opt_state: optax.OptState
    critic_params: dict
    critic_target_params: dict
    critic_opt_state: optax.OptState
    log_temperature: jax.Array  # float32 scalar, log alpha
    temperature_opt_state: optax.OptState
    step: jax.Array  # int32 scalar, number of updates applied


class SAC(NamedTuple):
    """The pure functions and static pieces of a SAC agent."""

    config: SACConfig
    target_entropy: float
    actor: TanhGaussianActor
    critic: TwinCritic
    init: Callable[[jax.Array], SACState]
    update: Callable[[SACState, Transitions, jax.Array], tuple[SACState, Metrics]]
    act: Callable[[dict, jax.Array], jax.Array]  # deterministic: tanh(mu(s))
    sample_actions: Callable[[dict, jax.Array, jax.Array], jax.Array]  # a ~ pi(.|s), one key
    # The agent interface (mb2po_jax.agents): a ~ pi(.|s) with one key per row,
    # (actor_params, obs [B, obs_dim], keys [B, 2]) -> [B, act_dim];
    sample_action: Callable[[dict, jax.Array, jax.Array], jax.Array]
    policy_params: Callable[[SACState], dict]
    # min over critics of Q(s, a): (state, obs [B, obs_dim], actions [B, act_dim]) -> [B].
    q_value: Callable[[SACState, jax.Array, jax.Array], jax.Array]


class Networks(NamedTuple):
    """SAC's static pieces the losses need."""

    config: SACConfig
    target_entropy: float
    actor: TanhGaussianActor
    critic: TwinCritic


def critic_loss(critic_params, state: SACState, batch: Transitions, key: jax.Array,
                nets: Networks):
    """J_Q (module doc); ``key`` samples a' ~ pi(.|s'). Returns ``(loss, metrics)``."""
    cfg, actor, critic = nets.config, nets.actor, nets.critic
    alpha = jnp.exp(state.log_temperature)
    mean, log_std = actor.apply(state.actor_params, batch.next_observations)
    next_actions, next_log_probs = sample_tanh_gaussian(mean, log_std, key)
    next_q = jnp.min(
        critic.apply(state.critic_target_params, batch.next_observations, next_actions), axis=0
    )
    target = batch.rewards + cfg.discount * (1.0 - batch.terminals) * (
        next_q - alpha * next_log_probs
    )
    target = jax.lax.stop_gradient(target)
    q = critic.apply(critic_params, batch.observations, batch.actions)  # [M, B]
    loss = jnp.sum(jnp.mean(0.5 * (q - target[None]) ** 2, axis=1))
    return loss, {"critic_loss": loss, "q_mean": jnp.mean(q), "target_mean": jnp.mean(target)}


def actor_loss(actor_params, state: SACState, batch: Transitions, key: jax.Array,
               nets: Networks):
    """J_pi (module doc). Returns ``(loss, (log_probs [B], metrics))``."""
    alpha = jnp.exp(state.log_temperature)
    mean, log_std = nets.actor.apply(actor_params, batch.observations)
    actions, log_probs = sample_tanh_gaussian(mean, log_std, key)
    q = jnp.min(nets.critic.apply(state.critic_params, batch.observations, actions), axis=0)
    loss = jnp.mean(alpha * log_probs - q)
    return loss, (log_probs, {"actor_loss": loss, "entropy": -jnp.mean(log_probs)})


def temperature_loss(log_temperature, log_probs: jax.Array, target_entropy: float):
    """J(alpha) in log alpha, log pi held constant."""
    alpha = jnp.exp(log_temperature)
    return jnp.mean(-alpha * (jax.lax.stop_gradient(log_probs) + target_entropy))


def make_sac(obs_dim: int, act_dim: int, config: SACConfig = SACConfig()) -> SAC:
    """Builds the SAC agent's pure functions for the given dimensions."""
    cfg = config
    target_entropy = -float(act_dim) if cfg.target_entropy is None else float(cfg.target_entropy)
    actor = TanhGaussianActor(act_dim, tuple(cfg.hidden_dims), cfg.log_std_min, cfg.log_std_max)
    critic = TwinCritic(cfg.num_critics, tuple(cfg.hidden_dims))
    actor_opt = optax.adam(cfg.actor_lr)
    critic_opt = optax.adam(cfg.critic_lr)
    temperature_opt = optax.adam(cfg.temperature_lr)

    def init(key: jax.Array) -> SACState:
        actor_key, critic_key = jax.random.split(key)
        obs = jnp.zeros((1, obs_dim), jnp.float32)
        act = jnp.zeros((1, act_dim), jnp.float32)
        actor_params = actor.init(actor_key, obs)
        critic_params = critic.init(critic_key, obs, act)
        log_temperature = jnp.asarray(jnp.log(cfg.init_temperature), jnp.float32)
        return SACState(
            actor_params=actor_params,
            actor_opt_state=actor_opt.init(actor_params),
            critic_params=critic_params,
            critic_target_params=critic_params,
            critic_opt_state=critic_opt.init(critic_params),
            log_temperature=log_temperature,
            temperature_opt_state=temperature_opt.init(log_temperature),
            step=jnp.zeros((), jnp.int32),
        )

    nets = Networks(cfg, target_entropy, actor, critic)

    def update(state: SACState, batch: Transitions, key: jax.Array) -> tuple[SACState, Metrics]:
        """One SAC step on a batch of B transitions (all fields [B, ...])."""
        next_key, actor_key = jax.random.split(key)
        (_, critic_aux), critic_grads = jax.value_and_grad(
            functools.partial(critic_loss, nets=nets), has_aux=True
        )(state.critic_params, state, batch, next_key)
        (_, (log_probs, actor_aux)), actor_grads = jax.value_and_grad(
            functools.partial(actor_loss, nets=nets), has_aux=True
        )(state.actor_params, state, batch, actor_key)
        alpha_loss, temperature_grad = jax.value_and_grad(temperature_loss)(
            state.log_temperature, log_probs, target_entropy
        )

        critic_params, critic_opt_state = optimizer_step(
            critic_opt, critic_grads, state.critic_opt_state, state.critic_params)
        actor_params, actor_opt_state = optimizer_step(
            actor_opt, actor_grads, state.actor_opt_state, state.actor_params)
        log_temperature, temperature_opt_state = optimizer_step(
            temperature_opt, temperature_grad, state.temperature_opt_state, state.log_temperature)
        target_params = optax.incremental_update(critic_params, state.critic_target_params, cfg.tau)
        new_state = SACState(
            actor_params=actor_params,
            actor_opt_state=actor_opt_state,
            critic_params=critic_params,
            critic_target_params=target_params,
            critic_opt_state=critic_opt_state,
            log_temperature=log_temperature,
            temperature_opt_state=temperature_opt_state,
            step=state.step + 1,
        )
        metrics = {
            **critic_aux,
            **actor_aux,
            "temperature_loss": alpha_loss,
            "temperature": jnp.exp(state.log_temperature),
            "critic_grad_norm": optax.global_norm(critic_grads),
            "actor_grad_norm": optax.global_norm(actor_grads),
        }
        return new_state, metrics

    def act(actor_params, observations: jax.Array) -> jax.Array:
        """Deterministic (evaluation) action tanh(mu(s)): [..., obs_dim] -> [..., act_dim]."""
        mean, _ = actor.apply(actor_params, observations)
        return jnp.tanh(mean)

    def sample_actions(actor_params, observations: jax.Array, key: jax.Array) -> jax.Array:
        """Exploration / behaviour action a ~ pi(.|s): [..., obs_dim] -> [..., act_dim]."""
        mean, log_std = actor.apply(actor_params, observations)
        return sample_tanh_gaussian(mean, log_std, key)[0]

    def sample_action(actor_params, observations: jax.Array, keys: jax.Array) -> jax.Array:
        """a ~ pi(.|s) per row: [B, obs_dim], keys [B, 2] -> [B, act_dim]."""
        mean, log_std = actor.apply(actor_params, observations)
        return jax.vmap(lambda m, s, k: sample_tanh_gaussian(m, s, k)[0])(mean, log_std, keys)

    def q_value(state: SACState, observations: jax.Array, actions: jax.Array) -> jax.Array:
        return jnp.min(critic.apply(state.critic_params, observations, actions), axis=0)

    return SAC(
        config=cfg,
        target_entropy=target_entropy,
        actor=actor,
        critic=critic,
        init=init,
        update=update,
        act=act,
        sample_actions=sample_actions,
        sample_action=sample_action,
        policy_params=lambda state: state.actor_params,
        q_value=q_value,
    )


def make_train_steps(
    update: Callable[[SACState, Transitions, jax.Array], tuple[SACState, Metrics]],
    batch_size: int,
    num_steps: int,
) -> Callable[[SACState, Transitions, jax.Array, jax.Array], tuple[SACState, Metrics]]:
    """``num_steps`` updates on batches sampled from a replay buffer, one ``lax.scan``.

    Returns a jitted ``train_steps(state, buffer, size, key) -> (state, metrics)``:
    batches are drawn uniformly from ``buffer``'s first ``size`` rows (the
    buffer has a fixed capacity, so one compiled program serves every fill
    level); metrics are the chunk means (one host transfer per chunk). Step
    ``i`` of the chunk uses ``jax.random.split(key, num_steps)[i]``, split into
    a batch key and an update key (:func:`mb2po_jax.training.make_train_steps`).
    """
    steps = make_scanned_steps(
        update, lambda data, key: sample_prefix(data[0], data[1], key, batch_size), num_steps)
    return lambda state, buffer, size, key: steps(state, (buffer, size), key)
