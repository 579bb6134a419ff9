"""Orbax checkpoints of a train state plus the JSON metadata needed to trust it.

A checkpoint holds two items: ``state`` (any pytree of arrays, e.g.
:class:`mb2po_jax.agents.awac.AWACState`) and ``meta`` (JSON: the run's config, the
dataset fingerprint, the phase, the wall time spent so far). Keeping the
config and the dataset fingerprint inside each checkpoint makes it
self-describing: ``experiments.evaluate`` rebuilds the networks from it, and a
resumed run can prove it is continuing the same experiment.

Restoring goes into an *abstract* target (``jax.eval_shape`` of the init
function), so the restored pytree has exactly the train state's structure,
dtypes and shapes, and a checkpoint from an incompatible architecture fails
loudly instead of being silently reshaped.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping

import orbax.checkpoint as ocp

logger = logging.getLogger(__name__)

# Fields that may change between a run and its resumption because they do not
# change any number the run computes (display and I/O only). eval.num_envs is
# here because evaluation seeds episodes by index, not by sub-env.
RESUME_SAFE_FIELDS = frozenset(
    {
        "train.progress_bar",
        "train.tensorboard",
        "eval.num_envs",
        "download",
        "d4rl_dir",
        "make_dataset.enabled",
    }
)


class RunMismatchError(RuntimeError):
    """A workdir holds a run of a different config or dataset."""


def flatten_config(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{'a': {'b': 1}}`` -> ``{'a.b': 1}``; tuples become lists (JSON round trip)."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_config(value, f"{name}."))
        else:
            flat[name] = list(value) if isinstance(value, tuple) else value
    return flat


def describe_differences(
    saved: Mapping[str, Any], current: Mapping[str, Any], ignore: frozenset = frozenset(),
    defaults: Mapping[str, Any] | None = None,
) -> str:
    """One line per differing (flattened) field with both values; '' if none.

    ``defaults`` (a nested config): a field absent from ``saved`` whose value
    in ``current`` is its default is not a difference. New config fields are
    added with defaults that keep the old behaviour (a deviation is opt-in),
    so a workdir made before the field existed resumes unchanged.
    """
    old, new = flatten_config(saved), flatten_config(current)
    default = flatten_config(defaults or {})
    differing = sorted(
        name for name in set(old) | set(new)
        if name not in ignore and old.get(name, "<absent>") != new.get(name, "<absent>")
        and not (name not in old and name in default and new.get(name) == default[name])
    )
    return "".join(
        f"  - {name}: workdir has {old.get(name, '<absent>')!r}, "
        f"this command has {new.get(name, '<absent>')!r}\n"
        for name in differing
    )


def check_same_run(
    saved: Mapping[str, Any],
    current: Mapping[str, Any],
    workdir: str | os.PathLike,
    *,
    saved_fingerprint: str | None = None,
    current_fingerprint: str | None = None,
    defaults: Mapping[str, Any] | None = None,
) -> None:
    """Refuses to resume when the config or the dataset differ.

    Args:
        saved: the config (nested mapping) stored with the run.
        current: the config asked for now.
        workdir: for the message.
        saved_fingerprint, current_fingerprint: dataset fingerprints; compared
            only when both are given.
        defaults: the default config; see :func:`describe_differences`.

    Raises:
        RunMismatchError: naming every differing field with both values, and
            the two ways out (same config, or a new workdir).
    """
    lines = describe_differences(saved, current, ignore=RESUME_SAFE_FIELDS, defaults=defaults)
    if lines:
        raise RunMismatchError(
            f"Workdir {workdir} holds a run with a different config:\n{lines}"
            f"Resume it with the same config (the same --config file and overrides), "
            f"or pass a new --workdir to start a separate run."
        )
    if saved_fingerprint and current_fingerprint and saved_fingerprint != current_fingerprint:
        raise RunMismatchError(
            f"Workdir {workdir} holds a run trained on a different dataset "
            f"(fingerprint {saved_fingerprint[:12]}..., this dataset "
            f"{current_fingerprint[:12]}...), although the dataset name "
            f"{current.get('dataset')!r} is the same: the data behind the name changed. "
            f"Use a new --workdir, or restore the original dataset."
        )


class Checkpointer:
    """Keeps the last ``max_to_keep`` checkpoints of one phase in ``directory``.

    Steps are the phase's own progress counter (e.g. AWAC gradient steps).
    Saves are synchronous-on-close: :meth:`close` (or the context manager)
    waits for any in-flight write, so a finished process never leaves a
    half-written checkpoint behind (Orbax commits a step atomically).
    """

    def __init__(self, directory: str | os.PathLike, max_to_keep: int = 3) -> None:
        if max_to_keep < 1:
            raise ValueError(f"max_to_keep must be >= 1, got {max_to_keep}.")
        self.directory = Path(directory).absolute()
        self._manager = ocp.CheckpointManager(
            self.directory,
            options=ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True),
        )

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step, or None if there is none."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def save(self, step: int, state: Any, meta: Mapping[str, Any]) -> None:
        """Writes ``state`` and ``meta`` at ``step`` (overwrites nothing: a step
        that already exists is left as it is, since it holds the same state)."""
        if step in self._manager.all_steps():
            return
        self._manager.save(
            int(step),
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(dict(meta))
            ),
            force=True,
        )
        self._manager.wait_until_finished()

    def restore(self, abstract_state: Any, step: int | None = None) -> tuple[Any, dict]:
        """Restores ``(state, meta)`` at ``step`` (default: the latest).

        Args:
            abstract_state: a pytree of ``jax.ShapeDtypeStruct`` (e.g.
                ``jax.eval_shape(init, key)``) giving the structure to restore into.
        """
        step = self.latest_step() if step is None else int(step)
        if step is None:
            raise FileNotFoundError(f"No checkpoint in {self.directory}.")
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state), meta=ocp.args.JsonRestore()
            ),
        )
        return restored.state, dict(restored.meta)

    def restore_part(self, abstract_part: Mapping[str, Any], step: int | None = None
                     ) -> tuple[dict, dict]:
        """Restores only some top-level fields of the saved state.

        Args:
            abstract_part: ``{field: abstract subtree}`` for the fields wanted
                (e.g. ``{"agent": ...}`` of an MB2PO state, leaving its model
                buffer, gigabytes at paper scale, on disk).

        Returns:
            ``({field: restored subtree}, meta)``. Use a fresh Checkpointer for
            a later full :meth:`restore` (Orbax binds one handler per item).
        """
        step = self.latest_step() if step is None else int(step)
        if step is None:
            raise FileNotFoundError(f"No checkpoint in {self.directory}.")
        item = dict(abstract_part)
        restored = self._manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.PyTreeRestore(
                    item=item, restore_args=ocp.checkpoint_utils.construct_restore_args(item),
                    partial_restore=True),
                meta=ocp.args.JsonRestore()),
        )
        return dict(restored.state), dict(restored.meta)

    def restore_newest_readable(self, abstract_state: Any) -> tuple[Any, dict]:
        """Restores the newest checkpoint that reads back, newest first.

        A checkpoint that fails to restore (a truncated or corrupted file,
        e.g. after a full disk or a copy cut short) is moved aside to
        ``<directory>.unreadable/<step>`` with a warning naming it and the step
        used instead, so the run resumes from the previous one and saves that
        step again. Raises the newest error if no checkpoint reads back.
        """
        failures: list[tuple[int, Exception]] = []
        for step in sorted(self.all_steps(), reverse=True):
            try:
                state, meta = self.restore(abstract_state, step)
            except Exception as error:  # noqa: BLE001 - any unreadable checkpoint
                failures.append((step, error))
                continue
            for bad, error in failures:
                aside = self.directory.parent / f"{self.directory.name}.unreadable" / str(bad)
                aside.parent.mkdir(parents=True, exist_ok=True)
                (self.directory / str(bad)).rename(aside)
                logger.warning(
                    "Checkpoint %s/%d does not read back (%s: %s); resuming from step %d "
                    "instead. The unreadable checkpoint was moved to %s.",
                    self.directory, bad, type(error).__name__, str(error)[:200], step, aside)
            if failures:
                self._manager.reload()
            return state, meta
        if failures:
            raise failures[0][1]
        raise FileNotFoundError(f"No checkpoint in {self.directory}.")

    def restore_meta(self, step: int | None = None) -> dict:
        """Only the JSON metadata (cheap: reads no arrays)."""
        step = self.latest_step() if step is None else int(step)
        if step is None:
            raise FileNotFoundError(f"No checkpoint in {self.directory}.")
        restored = self._manager.restore(
            step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())
        )
        return dict(restored.meta)

    def close(self) -> None:
        self._manager.wait_until_finished()
        self._manager.close()

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
