"""Where the runs of a study execute: this machine, a SLURM cluster (submitit), or a Dask cluster.

A study is a list of independent tasks, one per run folder (train it, or evaluate it); the folders are
claimed while written, resume when cut and are reused when finished with the same configuration, so an
executor only has to run every task once and report failures. :func:`run_tasks` does that through

- ``local``: in this process (``jobs = 1``) or a pool of ``jobs`` processes (``concurrent.futures``);
- ``submitit``: one job per task (a job array), on SLURM (``cluster=slurm``, the default where ``sbatch``
  exists) or as local subprocesses (``cluster=local``, for testing); a preempted or timed-out job is
  resubmitted by submitit's checkpointing hook and resumes from its run folder. Options: ``folder`` (logs),
  ``partition``, ``timeout_min``, ``gpus_per_node``, ``cpus_per_task``, ``mem_gb``, ``array_parallelism``
  and any other ``slurm_*`` parameter submitit accepts;
- ``dask``: a ``distributed`` client: a running scheduler (``address=tcp://...``), a ``dask-jobqueue``
  cluster (``cluster=slurm`` plus its parameters: ``queue``, ``cores``, ``memory``, ``walltime``,
  ``jobs``), or a ``LocalCluster`` of ``jobs`` single-threaded workers. A task whose worker dies is retried
  (``retries``, default 2) and resumes from its folder.

Options come from ``--executor-opts KEY=VALUE ...`` or a JSON file (``--executor-opts @file.json``). The
teacher-then-students barrier stays: :func:`run_tasks` returns only when every task has finished.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

EXECUTORS = ("local", "submitit", "dask")
NEEDS = {"submitit": ("submitit",), "dask": ("distributed",)}  # the modules each executor imports


@dataclass(frozen=True)
class ExecutorSpec:
    """``kind`` (:data:`EXECUTORS`), ``jobs`` (local processes, or Dask local workers) and ``options``."""

    kind: str = "local"
    jobs: int = 1
    options: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in EXECUTORS:
            raise ValueError(f"unknown executor {self.kind!r}; known: {', '.join(EXECUTORS)}")
        if self.jobs < 1:
            raise ValueError("jobs must be >= 1")
        missing = [m for m in NEEDS.get(self.kind, ()) if importlib.util.find_spec(m) is None]
        if missing:  # said before any run starts, not as an import error halfway through a study
            raise ValueError(f"--executor {self.kind} needs {', '.join(missing)}, which is not installed: "
                             "pip install -e \".[cluster]\"")


def parse_options(items: Sequence[str] | None) -> dict:
    """``["partition=gpu", "timeout_min=60"]`` or ``["@opts.json"]`` -> a dict (numbers parsed)."""
    out = {}
    for item in items or ():
        if item.startswith("@"):
            p = Path(item[1:])
            if not p.is_file():
                raise FileNotFoundError(f"--executor-opts {item}: no such file")
            out.update(json.loads(p.read_text()))
            continue
        if "=" not in item:
            raise ValueError(f"--executor-opts {item!r}: expected KEY=VALUE or @file.json")
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def run_tasks(spec: ExecutorSpec, fn: Callable, tasks: Sequence[tuple], desc: str = "runs",
              quiet: bool = True) -> list:
    """``[fn(*t) for t in tasks]``, executed as ``spec`` says; results in the order of ``tasks``. A task that fails
    raises here, after the others were given the chance to finish (their folders keep what they did)."""
    if not tasks:
        return []
    if spec.kind == "submitit":
        return _submitit(spec, fn, tasks)
    if spec.kind == "dask":
        return _dask(spec, fn, tasks)
    from tqdm.auto import tqdm

    if spec.jobs <= 1:
        return [fn(*t) for t in tqdm(tasks, desc=desc, disable=quiet or len(tasks) < 2)]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(spec.jobs, mp_context=mp.get_context("spawn")) as ex:
        futures = [ex.submit(fn, *t) for t in tasks]
        return [f.result() for f in tqdm(futures, desc=desc, disable=quiet)]


class _Resumable:
    """A task submitit may requeue: calling it again resumes from the run folder (submitit's checkpoint hook)."""

    def __init__(self, fn: Callable):
        self.fn = fn

    def __call__(self, *args):
        return self.fn(*args)

    def checkpoint(self, *args):
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args)


SUBMITIT_NAMES = {"partition": "slurm_partition", "timeout_min": "timeout_min", "gpus_per_node": "gpus_per_node",
                  "cpus_per_task": "cpus_per_task", "mem_gb": "mem_gb", "array_parallelism": "slurm_array_parallelism",
                  "nodes": "nodes", "tasks_per_node": "tasks_per_node", "name": "name"}


def _submitit(spec: ExecutorSpec, fn: Callable, tasks: Sequence[tuple]) -> list:
    import submitit

    opts = dict(spec.options)
    folder = opts.pop("folder", "runs/.submitit/%j")
    cluster = opts.pop("cluster", None)
    ex = submitit.AutoExecutor(folder=folder, cluster=cluster)
    params = {SUBMITIT_NAMES.get(k, k): v for k, v in opts.items()}
    params.setdefault("timeout_min", 60)
    ex.update_parameters(**params)
    task = _Resumable(fn)
    with ex.batch():
        jobs = [ex.submit(task, *t) for t in tasks]
    return [j.result() for j in jobs]


def _dask(spec: ExecutorSpec, fn: Callable, tasks: Sequence[tuple]) -> list:
    from distributed import Client, LocalCluster

    opts = dict(spec.options)
    retries = int(opts.pop("retries", 2))
    address, cluster_kind = opts.pop("address", None), opts.pop("cluster", None)
    cluster = None
    if address:
        client = Client(address)
    elif cluster_kind == "slurm":
        from dask_jobqueue import SLURMCluster

        n = int(opts.pop("jobs", spec.jobs))
        cluster = SLURMCluster(**opts)
        cluster.scale(jobs=n)
        client = Client(cluster)
    else:
        cluster = LocalCluster(n_workers=spec.jobs, threads_per_worker=1, processes=True, dashboard_address=None,
                               **opts)
        client = Client(cluster)
    try:
        futures = [client.submit(fn, *t, pure=False, retries=retries) for t in tasks]
        return client.gather(futures)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
