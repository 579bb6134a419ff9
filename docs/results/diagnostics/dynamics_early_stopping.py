"""Summarises dynamics_early_stopping.sh's runs: per task and setting, each
seed's final held-out MSE and NLL (mean over the members in use), the steps
trained, and the penalty lambda*u against the reward on held-out rows.
Usage: python dynamics_early_stopping.py DIR   (DIR: the launcher's $D)"""
import csv, glob, json, os, sys

root = sys.argv[1]
print("| task | early stopping | seed | steps trained | held-out MSE | held-out NLL | λ·u on held-out rows | reward there |")
print("|---|---|---|---|---|---|---|---|")
for run in sorted(glob.glob(os.path.join(root, "*_es*"))):
    if not os.path.isdir(run):
        continue
    task, es = os.path.basename(run).split("_es")
    for seed_dir in sorted(glob.glob(os.path.join(run, "dynamics", "seed_*"))):
        if not os.path.exists(os.path.join(seed_dir, "metrics_eval.csv")):
            continue  # still training
        evals = list(csv.DictReader(open(os.path.join(seed_dir, "metrics_eval.csv"))))
        train = list(csv.DictReader(open(os.path.join(seed_dir, "metrics_train.csv"))))
        last = evals[-1]
        print(f"| {task} | {es} | {seed_dir.rsplit('_', 1)[1]} | {train[-1]['step']} "
              f"| {float(last['val_mse_mean']):.4f} | {float(last['val_nll_mean']):.2f} "
              f"| {float(last['holdout_penalty_mean']):.3f} | {float(last['holdout_reward_mean']):.3f} |")
