"""The arms of a sweep and the task configs they are derived from.

For every task and seed, AWAC is pretrained once (the ``pretrain`` cell) and
every arm is a run config derived from the task's config:

* ``awac``: the fair control. AWAC pretraining *continued* for exactly as
  many further updates (same batch size) as the MB2PO arm makes
  (``mb2po.num_iterations x mb2po.updates_per_iteration``), so a gain of
  MB2PO over it cannot be just more training;
* ``mb2po``: AWAC+MB2PO (dynamics ensemble, then the fine-tuning iterations);
* ``mopo`` (opt-in): MOPO, the paper's main comparison, from scratch on the
  same dataset with the same dynamics and rollout code (``algorithm=mopo``:
  SAC in the conservative MDP). It reads no pretrained checkpoint; at CPU
  scale it makes as many updates as pretraining and the control together.

More arms plug into :data:`ARMS` (a name, a label, and how the arm's config is
derived from the task's). A variant (:func:`parse_variant`,
``NAME:FIELD=VALUE[,FIELD=VALUE...]``) adds an arm without code: MB2PO with
``mb2po.*`` / ``dynamics.*`` overrides (an ablation), started from the same
pretrained checkpoints, so a variant added to an existing sweep reuses its
pretraining.
"""

from __future__ import annotations

import ast
import copy
import dataclasses
import fcntl
import re
import tempfile
from pathlib import Path
from typing import Any, Callable

import ml_collections

from mb2po_jax.data import DatasetNotFoundError, parse_task_name, resolve_dataset
from mb2po_jax.envs import ENV_IDS
from mb2po_jax.harness.names import LABELS, MOPO, PRETRAIN, variant_label
from mb2po_jax import pipeline
from mb2po_jax.pipeline import PreparedData, Settings, UsageError
from mb2po_jax.pipeline.config import PAPER_MB2PO_TABLE, SCALES, check_field, paper_config


def finetune_updates(config: ml_collections.ConfigDict, section: str = "mb2po") -> int:
    """Gradient updates MB2PO makes after pretraining (the control matches
    it); with ``section="mopo"``, a MOPO run's (its whole training)."""
    return config[section].num_iterations * config[section].updates_per_iteration


def control_config(task_config: ml_collections.ConfigDict, pretrain_dir: Path):
    config = copy.deepcopy(task_config)
    extra = finetune_updates(task_config)
    config.awac.num_steps = task_config.awac.num_steps + extra
    config.mb2po.num_iterations = 0
    config.init.awac_workdir = str(pretrain_dir)
    return config


def mb2po_config(task_config: ml_collections.ConfigDict, pretrain_dir: Path):
    config = copy.deepcopy(task_config)
    config.init.awac_workdir = str(pretrain_dir)
    return config


def mopo_config(task_config: ml_collections.ConfigDict, pretrain_dir: Path):
    """MOPO from scratch on the task's dataset (its own ``config.mopo``): a
    peer on the same data, dynamics and rollout code, not a continuation."""
    del pretrain_dir  # MOPO trains SAC from scratch
    config = copy.deepcopy(task_config)
    config.algorithm = MOPO
    return config


@dataclasses.dataclass(frozen=True)
class Arm:
    """A way to continue from the pretrained AWAC checkpoint.

    Attributes:
        name: the cell directory and the ``arm`` column.
        label: the legend and table label.
        build: ``(task config, pretrain workdir) -> the cell's run config``.
        policy_phase: the checkpoint phase holding the arm's final policy.
        from_pretrained: whether the arm starts from the unit's pretrained
            AWAC checkpoint (then it waits for it, and is skipped if
            pretraining diverged); MOPO does not.
    """

    name: str
    label: str
    build: Callable[[ml_collections.ConfigDict, Path], ml_collections.ConfigDict]
    policy_phase: str
    from_pretrained: bool = True


ARMS: dict[str, Arm] = {
    "awac": Arm("awac", LABELS["awac"], control_config, "awac"),
    "mb2po": Arm("mb2po", LABELS["mb2po"], mb2po_config, "mb2po"),
    "mopo": Arm("mopo", LABELS["mopo"], mopo_config, "mopo", from_pretrained=False),
}
# What a sweep runs unless --arms says otherwise (MOPO is opt-in: it is a
# whole training run of its own, not a continuation).
DEFAULT_ARMS = ("awac", "mb2po")

# A variant is MB2PO with overrides of its own phases' fields; the pretrained
# checkpoint is shared, so fields of pretraining cannot vary, and the control's
# update count must stay the MB2PO arm's.
VARIANT_PREFIXES = ("mb2po.", "dynamics.")
# AWAC fields fine-tuning reads as its update rule (mb2po.alpha replaces
# awac.alpha there). They leave the networks' shapes and outputs alone, so the
# shared pretrained checkpoint restores unchanged; e.g. awac.critic_lr=0.0
# freezes the pretrained critic during MB2PO (the frozen-critic ablation, docs/results.md).
FINE_TUNING_AWAC_FIELDS = ("awac.critic_lr", "awac.policy_lr", "awac.tau", "awac.discount",
                           "awac.target_selection", "awac.max_weight",
                           "awac.num_advantage_samples", "awac.policy_weight_decay",
                           "awac.advantage_space")
MATCHED_FIELDS = ("mb2po.num_iterations", "mb2po.updates_per_iteration")
_VARIANT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def parse_variant(text: str, base: ml_collections.ConfigDict) -> tuple[str, dict[str, Any]]:
    """``"lam0.25:mb2po.penalty_coef=0.25"`` -> ``("lam0.25", {"mb2po.penalty_coef": 0.25})``."""
    name, sep, items = text.partition(":")
    example = "e.g. --variant=nll_mean:dynamics.nll_reduction=mean"
    if not sep or not name or not items:
        raise UsageError(f"--variant={text!r}: expected NAME:FIELD=VALUE[,FIELD=VALUE...], "
                         f"{example}.")
    if not _VARIANT_NAME.match(name) or name in (PRETRAIN, *ARMS):
        raise UsageError(f"--variant={text!r}: the name {name!r} must be letters, digits and "
                         f"_.+- (it names the cell directory) and not one of "
                         f"{[PRETRAIN, *ARMS]}.")
    # Split only before the next FIELD=, so a tuple value like (64,64) stays whole.
    try:
        overrides = parse_overrides(re.split(r",(?=[A-Za-z_][\w.]*=)", items), base)
    except UsageError as error:
        raise UsageError(f"--variant={text!r}: {error}") from None
    for field in overrides:
        if not field.startswith(VARIANT_PREFIXES) and field not in FINE_TUNING_AWAC_FIELDS:
            raise UsageError(f"--variant={text!r}: {field} is not a field of the MB2PO arm's "
                             f"own phases ({', '.join(p + '*' for p in VARIANT_PREFIXES)}, or "
                             f"the AWAC update rule fine-tuning uses: "
                             f"{', '.join(FINE_TUNING_AWAC_FIELDS)}); the pretrained "
                             f"checkpoint is shared by every arm, so vary pretraining with "
                             f"--set on another --workdir.")
        if field in MATCHED_FIELDS:
            raise UsageError(f"--variant={text!r}: {field} sets how many updates fine-tuning "
                             f"makes, which the control arm matches for the whole sweep; "
                             f"change it with --set on another --workdir.")
    return name, overrides


def variant_arm(name: str, overrides: dict[str, Any]) -> Arm:
    def build(task_config: ml_collections.ConfigDict, pretrain_dir: Path):
        config = mb2po_config(task_config, pretrain_dir)
        for field, value in overrides.items():
            _assign(config, field, value)
        return config

    return Arm(name, variant_label(name, overrides), build, "mb2po")


def arm_table(variants: dict[str, dict[str, Any]] | None) -> dict[str, Arm]:
    """The built-in arms and the sweep's variants, by name."""
    return {**ARMS, **{name: variant_arm(name, o) for name, o in (variants or {}).items()}}


def parse_overrides(items: list[str], base: ml_collections.ConfigDict) -> dict[str, Any]:
    """``["awac.num_steps=1000", ...]`` -> ``{"awac.num_steps": 1000}``, every
    field checked against ``base`` (an unknown one fails naming it)."""
    out = {}
    for item in items:
        field, sep, text = item.partition("=")
        if not sep or not field:
            raise UsageError(f"--set={item!r}: expected FIELD=VALUE, e.g. --set=awac.num_steps=1000.")
        if field in ("seed", "num_seeds"):
            raise UsageError(f"--set={item!r}: the harness sets each cell's seeds itself; choose "
                             f"them with --seeds (and --seed_programs).")
        check_field(base, field)
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            value = text  # a bare string such as max_std_norm
        out[field] = value
    return out


def _assign(config: ml_collections.ConfigDict, dotted: str, value: Any) -> None:
    *parents, leaf = dotted.split(".")
    node = config
    for part in parents:
        node = node[part]
    if isinstance(value, list):
        value = tuple(value)
    node[leaf] = value


def task_config(task: str, scale: str, overrides: dict[str, Any],
                datasets: dict[str, str]) -> ml_collections.ConfigDict:
    """The task's paper config at ``scale``, its dataset and the overrides."""
    config = SCALES[scale](paper_config(task))
    if task in datasets:
        config.dataset = datasets[task]
    for field, value in overrides.items():
        _assign(config, field, value)
    if scale == "smoke" and task not in datasets:
        _smoke_dataset(config, task)
    if finetune_updates(config) < 1:
        raise UsageError(f"{task}: mb2po.num_iterations x mb2po.updates_per_iteration must be "
                         f">= 1: the arms compare fine-tuning updates.")
    return config


def _smoke_dataset(config: ml_collections.ConfigDict, task: str) -> None:
    """At smoke scale a missing task dataset is replaced by a tiny random-policy
    one recorded on first use (as the quickstart does); other scales fail."""
    try:
        resolve_dataset(config.dataset, d4rl_dir=config.d4rl_dir)
        return
    except DatasetNotFoundError:
        pass
    env, _ = parse_task_name(task)
    env_id = ENV_IDS[env]
    config.dataset = f"minari:mb2po/{env}/smoke-random-v0"
    config.make_dataset.enabled = True
    config.make_dataset.env_id = env_id
    config.make_dataset.num_steps = 400
    # Recorded now, under a lock, so shards started together do not race to
    # write the same dataset.
    with open(Path(tempfile.gettempdir()) / "mb2po-smoke-dataset.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        prepare_dataset(config)


def prepare_dataset(config: ml_collections.ConfigDict) -> PreparedData:
    """A run config's dataset, loaded (recorded first where the config asks)."""
    return pipeline.prepare_dataset(Settings.from_config(config).data)


def parse_datasets(items: list[str]) -> dict[str, str]:
    """``["hopper-mixed=hdf5:/data/x.hdf5", ...]`` (``--dataset``) -> task -> dataset."""
    out = {}
    for item in items:
        task, sep, spec = item.partition("=")
        if not sep or task not in PAPER_MB2PO_TABLE:
            raise UsageError(f"--dataset={item!r}: expected TASK=DATASET with TASK one of "
                             f"{sorted(PAPER_MB2PO_TABLE)}, e.g. "
                             f"--dataset=hopper-mixed=hdf5:/data/hopper_medium_replay-v2.hdf5.")
        out[task] = spec
    return out

