"""``run(config, workdir)``: every phase of a run, resumed exactly where a
workdir left off.

Phases (paper Algorithm 1), each checkpointed with Orbax under
``workdir/checkpoints/<phase>/``: ``awac`` (offline pretraining), ``dynamics``
(the ensemble), ``mb2po`` (fine-tuning in the conservative model MDP); then
``workdir/results.json`` (the AWAC-only and AWAC+MB2PO scores side by side)
and ``workdir/learning_curve.png``. ``mb2po.num_iterations=0`` stops after
AWAC; ``algorithm='mopo'`` runs ``dynamics`` and ``mopo`` instead. The config
is checked (:mod:`~mb2po_jax.pipeline.validation`) and read into typed
settings (:mod:`~mb2po_jax.pipeline.settings`) here, once.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import ml_collections

from mb2po_jax.checkpoint import flatten_config
from mb2po_jax.envs import get_termination_fn
from mb2po_jax.pipeline.awac_phase import awac_phase
from mb2po_jax.pipeline.dataset import prepare_dataset
from mb2po_jax.pipeline.dynamics_phase import dynamics_phase
from mb2po_jax.pipeline.errors import ResourceError, UsageError
from mb2po_jax.pipeline.fine_tuning_phase import mb2po_phase, mopo_phase
from mb2po_jax.pipeline.resources import buffer_memory_problem, checkpoint_disk_problem
from mb2po_jax.pipeline.results import RESULTS_FILE, plot, run_results
from mb2po_jax.pipeline.seed_axis import SeedAxis
from mb2po_jax.pipeline.settings import AWAC, DYNAMICS, MB2PO, MOPO, Settings
from mb2po_jax.pipeline.validation import config_json, validate_config
from mb2po_jax.pipeline.warm_start import restore_from_workdir
from mb2po_jax.pipeline.workdir import (EXTENDABLE, RUN_FILE, check_same_run_in, extension)
from mb2po_jax.runner import run_phase, workdir_lock
from mb2po_jax.transitions import to_device

logger = logging.getLogger(__name__)


def run(config: ml_collections.ConfigDict, workdir: str | Path, *,
        extend: bool = False) -> dict[str, Any]:
    """Runs (or resumes) every phase and returns the results dict it writes.

    ``extend``: the config may raise the run's length (:data:`EXTENDABLE`)
    over the workdir's; the run continues from its checkpoints to the new
    length (the same numbers as a run made that long from the start).

    Raises:
        WorkdirBusyError: another process is running in ``workdir``.
    """
    validate_config(config)
    settings = Settings.from_config(config)
    workdir = Path(workdir).expanduser().absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    with workdir_lock(workdir):
        return _run_locked(config_json(config), settings, workdir, extend)


def _run_locked(config: dict[str, Any], settings: Settings, workdir: Path,
                extend: bool) -> dict[str, Any]:
    run_path = workdir / RUN_FILE
    saved = json.loads(run_path.read_text()) if run_path.exists() else None
    if saved is not None:
        if extend:
            extended = extension(saved["config"], config, workdir)
            if extended != saved["config"]:
                # What is left must be the same run; then the longer length
                # becomes the workdir's.
                check_same_run_in(extended, config, workdir, saved.get("workdir"))
                saved = {**saved, "config": extended,
                         "extended": saved.get("extended", []) + [
                             {f: flatten_config(config)[f] for f in EXTENDABLE}]}
                run_path.write_text(json.dumps(saved, indent=2))
        # Config first: it needs no dataset, so a wrong command fails at once.
        check_same_run_in(saved["config"], config, workdir, saved.get("workdir"))

    data = prepare_dataset(settings.data)
    if settings.fine_tune:
        try:
            get_termination_fn(data.env_id)
        except ValueError as error:
            raise UsageError(f"Model rollouts need a termination function: {error}") from None
        # Before any training, and before run.json binds the workdir to this
        # config (the fix the message names must be accepted on a re-run): a
        # checkpoint that cannot be written would only fail hours in, at
        # fine-tuning's first save.
        problem = checkpoint_disk_problem(settings, data.info.obs_dim, data.info.act_dim,
                                          workdir)
        if problem:
            raise ResourceError(problem)
        memory = buffer_memory_problem(settings, data.info.obs_dim, data.info.act_dim)
        if memory and memory[1]:
            raise ResourceError(memory[0])
        if memory:
            logger.warning(memory[0])

    if saved is not None:
        check_same_run_in(saved["config"], config, workdir, saved.get("workdir"),
                          saved_fingerprint=saved["dataset"]["fingerprint"],
                          current_fingerprint=data.info.fingerprint)
    else:
        # Where the workdir is now: init.* paths are compared relative to it
        # when the run resumes after moving (check_same_run_in).
        run_path.write_text(json.dumps(
            {"config": config, "dataset": data.info.to_dict(), "env_id": data.env_id,
             "workdir": str(workdir)}, indent=2))
    meta = {"config": config, "dataset": data.info.to_dict(), "env_id": data.env_id}
    common = dict(meta=meta, progress_bar=settings.train.progress_bar,
                  tensorboard=settings.train.tensorboard)
    # One copy on device, replicated over the devices the seeds are split on.
    dataset = SeedAxis.of(settings).shared(to_device(data.transitions))

    def initial(source: str | None, phase):
        return restore_from_workdir(source, phase, data) if source else None

    outcomes = {}
    if not settings.mopo:
        awac = awac_phase(settings, data, dataset)
        outcomes[AWAC] = run_phase(
            awac, workdir, initial_state=initial(settings.awac_init_workdir, awac), **common)
    if settings.fine_tune:
        dyn_phase = dynamics_phase(settings, data, dataset)
        dyn = run_phase(dyn_phase, workdir,
                        initial_state=initial(settings.dynamics_init_workdir, dyn_phase),
                        **common)
        outcomes[DYNAMICS] = dyn
        if settings.mopo:
            outcomes[MOPO] = run_phase(mopo_phase(settings, data, dataset, dyn.state), workdir,
                                       **common)
        else:
            outcomes[MB2PO] = run_phase(
                mb2po_phase(settings, data, dataset, outcomes[AWAC].state, dyn.state), workdir,
                **common)

    results = run_results(settings, data, outcomes)
    (workdir / RESULTS_FILE).write_text(json.dumps(results, indent=2))
    plot(workdir, settings)
    return results
