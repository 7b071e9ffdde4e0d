"""Seconds to dry-run the experiment matrix: readrace's DAG against Snakemake's own floor.

Usage:  python benchmarks/dryrun.py [--repeats 3] [--configfile configs/paper.yaml ...]

Times, end to end as subprocesses (interpreter start-up, imports, Snakefile parse with config
validation, DAG building, the dry-run job listing), the median of ``--repeats`` runs of:

- ``import snakemake``: ``python -c "import snakemake"``, the interpreter start-up floor;
- ``import snakemake.cli``: all of Snakemake's modules, and the registration of its installed
  plugins (the SLURM executor plugin asks ``scontrol show config`` at import, which costs up
  to its 10 s time-out where a SLURM client is installed but no controller answers);
- trivial Snakefile: a generated workflow of one rule with as many jobs as a readrace matrix
  (``rule all`` plus one job per output file; one such workflow per distinct job count),
  dry-run with ``snakemake -n``: what Snakemake itself costs for a DAG of that size, its
  executor plugins' start-up included;
- readrace, one row per ``--configfile`` (default ``configs/paper.yaml``, the paper's matrix,
  and ``config.yaml``, the embedded default): ``snakemake -n --configfile FILE``.

Every dry run runs in a fresh temporary directory (``--snakefile``, ``--directory``), so no
``results/`` or ``.snakemake/`` state of the checkout changes the DAG or the timing. The
variants take turns round by round, so that a load which drifts during the run weighs on all of
them alike. Prints the job count per rule, parsed from Snakemake's job-stats table, then a
markdown table of median seconds and, for readrace, the ratio to the trivial Snakefile of the
same job count ("x floor": 1.00 would mean readrace costs nothing above Snakemake's own floor).

Timings are wall-clock on a possibly shared machine: compare rows within one run. The CPU
seconds (user + system, of the process and its children) move less with the load of others.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

#: One row of Snakemake's "Job stats:" table: rule name and job count.
_STATS_ROW = re.compile(r"^(\w+)\s+(\d+)$", flags=re.M)


def job_stats(stdout: str) -> dict[str, int]:
    """Jobs per rule from the first job-stats table of ``snakemake -n`` output (with ``total``)."""
    start = stdout.find("Job stats:")
    if start < 0:
        return {}
    table = stdout[start:].split("\n\n", 1)[0]
    return {rule: int(count) for rule, count in _STATS_ROW.findall(table)}


def trivial_snakefile(folder: Path, n_jobs: int) -> Path:
    """A one-rule workflow whose dry run has ``n_jobs`` jobs: ``all`` and ``n_jobs - 1`` touches."""
    snakefile = folder / "Snakefile"
    snakefile.write_text(
        f"N = {n_jobs - 1}\n\n"
        "rule all:\n"
        "    input: expand('out/{i}.txt', i=range(N))\n\n"
        "rule make:\n"
        "    output: 'out/{i}.txt'\n"
        "    shell: 'touch {output}'\n"
    )
    return snakefile


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_run(command: list[str]) -> tuple[float, float, str]:
    """Wall-clock and CPU seconds of ``command``, and its stdout; a failure stops the benchmark."""
    cpu = _children_cpu()
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{result.stderr[-3000:]}")
    return seconds, _children_cpu() - cpu, result.stdout


def dry_run_command(snakefile: Path, directory: Path, configfile: Path | None = None) -> list[str]:
    """``snakemake -n`` of ``snakefile`` in ``directory`` (outputs and .snakemake/ go there)."""
    command = [sys.executable, "-m", "snakemake", "-n", "--snakefile", str(snakefile), "--directory", str(directory)]
    return command + (["--configfile", str(configfile)] if configfile else [])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per variant; the median is reported")
    parser.add_argument(
        "--configfile", type=Path, nargs="+", default=[Path("configs/paper.yaml"), Path("config.yaml")],
        help="readrace configs to dry-run, relative to the repository root or absolute",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        commands: dict[str, list[str]] = {
            "import snakemake": [sys.executable, "-c", "import snakemake"],
            "import snakemake.cli": [sys.executable, "-c", "import snakemake.cli"],
        }
        jobs: dict[str, int] = dict.fromkeys(commands, 0)
        floor_of: dict[str, str] = {}  # readrace label -> label of its trivial Snakefile
        stats: dict[str, dict[str, int]] = {}
        for number, configfile in enumerate(args.configfile):
            label = f"readrace {configfile}"
            workdir = tmp / f"readrace-{number}"
            workdir.mkdir()
            command = dry_run_command(REPO / "Snakefile", workdir, REPO / configfile)
            # One untimed run for the job counts, which size the trivial Snakefile.
            stats[label] = job_stats(timed_run(command)[2])
            if "total" not in stats[label]:
                sys.exit(f"{label}: no job-stats table in the dry run's output")
            n_jobs = stats[label]["total"]
            floor_of[label] = f"trivial Snakefile, {n_jobs} jobs"
            if floor_of[label] not in commands:
                trivial_dir = tmp / f"trivial-{n_jobs}"
                trivial_dir.mkdir()
                commands[floor_of[label]] = dry_run_command(trivial_snakefile(trivial_dir, n_jobs), trivial_dir)
                jobs[floor_of[label]] = n_jobs
            commands[label] = command
            jobs[label] = n_jobs

        seconds: dict[str, list[float]] = {label: [] for label in commands}
        cpu_seconds: dict[str, list[float]] = {label: [] for label in commands}
        for _ in range(args.repeats):
            for label, command in commands.items():
                elapsed, cpu, stdout = timed_run(command)
                seconds[label].append(elapsed)
                cpu_seconds[label].append(cpu)
                if label.startswith("trivial") and job_stats(stdout).get("total") != jobs[label]:
                    sys.exit(f"{label}: the dry run has {job_stats(stdout).get('total')} jobs")

    for label, counts in stats.items():
        print(f"{label}: jobs per rule")
        for rule, count in counts.items():
            print(f"  {rule:<24}{count:>6}")
    print()
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, snakemake -n, median of {args.repeats} runs")
    print()
    median = {label: statistics.median(runs) for label, runs in seconds.items()}
    cpu = {label: statistics.median(runs) for label, runs in cpu_seconds.items()}
    print("| variant | jobs | median s | min s | median CPU s | x floor |")
    print("|---|---:|---:|---:|---:|---:|")
    for label, runs in seconds.items():
        ratio = f"{median[label] / median[floor_of[label]]:.2f}" if label in floor_of else ""
        print(f"| {label} | {jobs[label] or ''} | {median[label]:.2f} | {min(runs):.2f} | {cpu[label]:.2f} | {ratio} |")


if __name__ == "__main__":
    main()
