"""`snakemake --profile slurm` against a real SLURM cluster.

A tiny synthetic dataset is ingested locally, then one model is trained, predicted and
scored through the repository's profile (`--profile slurm`, run from the repository root, as
users do) and the real snakemake-executor-plugin-slurm: three SLURM jobs, two of them asking
for a GPU. The test checks the outputs and what SLURM recorded for every job (partition,
GPUs, CPUs, memory, time limit) against the rules' resources at attempt 1.

It needs a running cluster with a GPU declared as GRES, and does not start one: locally,
`bash slurm/local-cluster.sh start` (root, Debian's slurm-wlm and munge); .ci/run does it
when it can. Elsewhere it skips and says why. About 2 minutes on 2 cores.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import REPO, run_snakemake

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]

THREADS = 2  # execution.threads: the CPUs of the train and predict jobs (1 would prove nothing)
CONFIG = {
    "pseudonym_salt": "salt-for-the-slurm-test",
    "training": {"epochs": 2, "batch_size": 16, "patience": 2, "augment": False},
    "execution": {"threads": THREADS, "gpus": 1},
    "evaluation": {"bootstrap": 100},
    "experiments": [{"kind": "race_detection", "train": ["tiny"], "archs": ["resnet18"], "perturbations": ["none"],
                     "seeds": [0]}],
    "datasets": {
        "tiny": {
            "adapter": "synthetic", "modality": "cxr", "shards": 1,
            "split": {"train": 0.5, "validation": 0.2, "test": 0.3},
            "preprocess": {"size": 32},
            "options": {"site": "A", "patients": 40, "seed": 5},
        },
    },
}
MODEL = "race_detection/tiny/resnet18/none/seed0"
SLURM_TARGET = f"results/scores/{MODEL}/tiny.csv"

# What each SLURM job must ask for at attempt 1: the resources of its rule
# (workflow/rules/race_detection.smk and evaluate.smk: mem_mb and runtime are per_attempt(base)).
EXPECTED = {
    "train_model": {"mem_mb": 16000, "runtime": 240, "gpus": 1, "cpus": THREADS},
    "predict": {"mem_mb": 8000, "runtime": 60, "gpus": 1, "cpus": THREADS},
    "score": {"mem_mb": 4000, "runtime": 30, "gpus": 0, "cpus": 1},
}


def _slurm_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=30)


def cluster_or_skip() -> str:
    """The default partition of a reachable cluster that can run the test's jobs, else skip."""
    if shutil.which("sinfo") is None or shutil.which("sbatch") is None:
        pytest.skip("SLURM is not installed (sinfo/sbatch not found): apt-get install slurm-wlm munge, "
                    "then bash slurm/local-cluster.sh start")
    try:
        result = _slurm_command("sinfo", "--noheader", "--format=%P|%a|%T|%c|%m|%G")
    except subprocess.TimeoutExpired:
        pytest.skip("SLURM is not reachable: sinfo timed out")
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no message"])[-1]
        pytest.skip(f"SLURM is not reachable (sinfo failed: {reason}); "
                    "start the local cluster with bash slurm/local-cluster.sh start")
    rows = [line.split("|") for line in result.stdout.split()]
    default = [row for row in rows if row[0].endswith("*")]
    if not default:
        pytest.skip(f"SLURM has no default partition: {result.stdout.strip()!r}")
    partition = default[0][0]
    # sinfo prints one row per group of alike nodes: one that can run every job is enough.
    usable = [(state, cpus, memory, gres) for _, available, state, cpus, memory, gres in default
              if available == "up" and state in ("idle", "mixed", "allocated", "completing")]
    if not usable:
        pytest.skip(f"the default partition {partition} has no usable node: {result.stdout.strip()!r}")
    if not any("gpu" in gres for *_, gres in usable):
        pytest.skip(f"the default partition {partition} declares no GPU GRES: {result.stdout.strip()!r}")
    if not any(int(cpus.rstrip("+")) >= THREADS and int(memory.rstrip("+")) >= EXPECTED["train_model"]["mem_mb"]
               and "gpu" in gres for _, cpus, memory, gres in usable):
        pytest.skip(f"no node of {partition} can run the train job ({THREADS} CPUs, "
                    f"{EXPECTED['train_model']['mem_mb']} MB, a GPU): {result.stdout.strip()!r}")
    return partition.rstrip("*")


def snakemake(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    """Snakemake from the repository root, as a user runs it (`--profile slurm` is ./slurm)."""
    return run_snakemake(workdir, *args, cwd=REPO, timeout=600)


def show_job(job_id: str) -> dict[str, str]:
    """SLURM's record of a job (`scontrol -d -o show job`), first value of every key."""
    result = _slurm_command("scontrol", "-d", "-o", "show", "job", job_id)
    assert result.returncode == 0, result.stderr
    record: dict[str, str] = {}
    for token in result.stdout.split():
        key, _, value = token.partition("=")
        record.setdefault(key, value)
    return record


def minutes(time_limit: str) -> int:
    """A SLURM time limit ([D-]HH:MM:SS) in minutes."""
    days, _, clock = time_limit.rpartition("-")
    hours, mins, secs = (int(part) for part in clock.split(":"))
    return int(days or 0) * 1440 + hours * 60 + mins + (secs > 0)


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    partition = cluster_or_skip()
    workdir = tmp_path_factory.mktemp("slurm")
    (workdir / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    # The ingestion stages run here, with the local executor: each SLURM job costs two
    # Snakemake start-ups and a status poll, and the jobs that matter are the three below.
    local = snakemake(workdir, "--cores", "2", "results/tiny/manifest.parquet", "results/tiny/cache/images.npy")
    assert local.returncode == 0, local.stderr[-4000:]
    remote = snakemake(
        workdir, "--profile", "slurm",
        # The profile's GPU partition is a placeholder that users edit; here, the default one.
        "--set-resources", f"train_model:slurm_partition={partition}", f"predict:slurm_partition={partition}",
        # Poll every few seconds instead of the profile's pace for a busy cluster, and do not
        # wait a shared filesystem's minute for outputs of a local one.
        "--slurm-init-seconds-before-status-checks", "1", "--seconds-between-status-checks", "1",
        "--latency-wait", "5",
        "--verbose",  # logs every sbatch call
        SLURM_TARGET,
    )
    assert remote.returncode == 0, remote.stderr[-6000:]
    log = remote.stdout + remote.stderr
    run_id = re.search(r"SLURM run ID: (\S+)", log).group(1)
    # Every job of this run, whatever the log says: SLURM names them all after the run id.
    listed = _slurm_command("squeue", "--noheader", "--states=all", f"--name={run_id}", "--format=%i")
    jobs = {}
    for job_id in listed.stdout.split():
        record = show_job(job_id)
        rule = re.match(r"rule_(.+?)_wildcards_", record["Comment"]).group(1)
        assert rule not in jobs, f"two SLURM jobs for {rule}"
        jobs[rule] = record
    calls = {re.search(r"--comment rule_(.+?)_wildcards_", call).group(1): call
             for call in re.findall(r"sbatch call: (sbatch .*?) --wrap=", log)}
    return {"workdir": workdir, "partition": partition, "log": log, "jobs": jobs, "calls": calls}


def test_the_model_is_trained_predicted_and_scored_through_slurm(run):
    workdir = run["workdir"]
    assert set(run["jobs"]) == {"train_model", "predict", "score"}
    assert all(job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0" for job in run["jobs"].values())
    log = pd.read_csv(workdir / f"results/models/{MODEL}/train_log.csv")
    assert 1 <= len(log) <= CONFIG["training"]["epochs"] and np.isfinite(log["train_loss"]).all()
    assert (workdir / f"results/models/{MODEL}/model.pt").stat().st_size > 100_000
    manifest = pd.read_parquet(workdir / "results/tiny/manifest.parquet")
    predictions = pd.read_parquet(workdir / f"results/predictions/{MODEL}/tiny.parquet")
    assert sorted(predictions["image_id"]) == sorted(manifest.loc[manifest["split"] == "test", "image_id"])
    probabilities = predictions[["prob_Asian", "prob_Black", "prob_White"]]
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    scores = pd.read_csv(workdir / SLURM_TARGET)
    assert set(scores["class"]) == {"Asian", "Black", "White", "macro"}
    macro = scores[(scores["class"] == "macro") & (scores["level"] == "image")].iloc[0]
    assert macro["n_images"] == len(predictions) and 0 <= macro["auc"] <= 1


def test_slurm_recorded_the_resources_of_each_rule(run):
    for rule, expected in EXPECTED.items():
        job = run["jobs"][rule]
        assert job["Partition"] == run["partition"], rule
        assert job["MinMemoryNode"] == f"{expected['mem_mb']}M", rule
        assert minutes(job["TimeLimit"]) == expected["runtime"], rule
        assert int(job["NumCPUs"]) == expected["cpus"] and int(job["CPUs/Task"]) == expected["cpus"], rule
        if expected["gpus"]:
            # Asked for (TresPerJob) and allocated (JOB_GRES).
            assert job["TresPerJob"] == f"gres:gpu:{expected['gpus']}", rule
            assert job["JOB_GRES"] == f"gpu:{expected['gpus']}", rule
        else:
            assert "gpu" not in job.get("TresPerJob", "") and job["JOB_GRES"] == "(null)", rule


def test_the_plugin_built_the_sbatch_flags_from_the_rules(run):
    for rule, expected in EXPECTED.items():
        flags = run["calls"][rule].split()
        assert flags[flags.index("-p") + 1] == run["partition"], rule
        assert flags[flags.index("--mem") + 1] == str(expected["mem_mb"]), rule
        assert flags[flags.index("-t") + 1] == str(expected["runtime"]), rule
        assert f"--cpus-per-task={expected['cpus']}" in flags, rule
        gpu_flags = [flag for flag in flags if flag.startswith(("--gpus", "--gres"))]
        assert gpu_flags == ([f"--gpus={expected['gpus']}"] if expected["gpus"] else []), rule
    # The job states came from squeue, the profile's status command (no accounting database).
    assert "command=squeue" in run["log"]
