"""Rows of docs/results/cpu_walker2d_diagnostics.csv from the diagnostic runs'
metrics (every evaluation joined with the training metrics of its iteration).
Other runs: python collect.py NAME:LABEL:COMMIT ... (then only those)."""
import csv, json, os, sys
from pathlib import Path

D = Path(os.environ.get("DIAG_DIR", "runs/diag"))
RUNS = [  # (workdir, label, commit)
    ("d_default", "d_default", "70504ce"), ("d_omega1", "d_omega1", "70504ce"),
    ("d2_default", "d2_default", "93645e5"), ("d2_omega0.05", "d2_omega0.05", "93645e5"),
    ("d2_omega0.25", "d2_omega0.25", "93645e5"),
    ("d3_mean", "d3_mean (next_state=mean)", "ca9dc26"),
    ("s_sim", "s_sim (model=simulator)", "f82045d"),
    ("s_restorable", "s_restorable (start_states=restorable)", "179df00"),
    ("s_sim_tmin", "s_sim_tmin (model=simulator; awac.target_selection=target_min)", "179df00"),
    ("d4_tmin", "d4_tmin (awac.target_selection=target_min)", "179df00"),
    ("s_sim_alpha2", "s_sim_alpha2 (model=simulator; mb2po.alpha=2)", "179df00"),
    ("b100", "b100 (mb2po.buffer_iterations=100; the paper's K)", "179df00"),
    ("s_sim_b100", "s_sim_b100 (model=simulator; buffer_iterations=100)", "179df00"),
    ("bc_self", "bc_self (mb2po.alpha=1e6; weights about 1; self-imitation)", "179df00"),
    ("frozen_critic", "frozen_critic (awac.critic_lr=0 in fine-tuning)", "179df00"),
    ("qlr3e-5", "qlr3e-5 (awac.critic_lr=3e-5 in fine-tuning)", "35c2066"),
    ("tau5e-4", "tau5e-4 (awac.tau=5e-4 in fine-tuning)", "35c2066"),
] if len(sys.argv) == 1 else [(x.split(":", 1)[0], *x.split(":", 1)[1].rsplit(":", 1)) for x in sys.argv[1:]]  # NAME:LABEL:COMMIT
OLD = ["run", "omega", "commit", "eval_seed", "iteration", "normalized_score", "episode_length_mean",
       "num_episodes", "q_real_mean", "log_prob_mean", "policy_shift", "sim_reward_bias_policy",
       "sim_reward_abs_error_policy", "sim_state_mse_policy", "sim_state_mse_data",
       "sim_true_reward_policy", "sim_true_reward_data", "sim_termination_policy",
       "sim_penalty_policy", "sim_penalty_data"]
NEW = ["critic_loss", "advantage_std", "q_model_mean", "rollout_penalized_reward_mean"]
out = csv.DictWriter(sys.stdout, OLD + NEW, lineterminator="\n")
out.writeheader()
for name, label, commit in RUNS:
    run = D / name
    if not (run / "mb2po" / "metrics_eval.csv").exists():
        continue
    config = json.loads((run / "run.json").read_text())["config"]
    train = {r["step"]: r for r in csv.DictReader(open(run / "mb2po" / "metrics_train.csv"))}
    for ev in csv.DictReader(open(run / "mb2po" / "metrics_eval.csv")):
        tr = train[ev["step"]]
        row = {**{k: ev.get(k, "") for k in OLD + NEW}, **{k: tr[k] for k in
               ("q_real_mean", "log_prob_mean", "policy_shift") + tuple(NEW)}}
        row.update(run=label, omega=config["mb2po"]["omega"], commit=commit,
                   eval_seed=config["eval"]["seed"], iteration=ev["step"])
        out.writerow(row)
