"""Evaluation: checkpoints or a features bundle -> features -> bounds -> a report folder; and many runs at once.

A single evaluation writes its folder atomically (a crash never leaves a half-written folder) and
claims it for the whole run (a second writer gets a clear error). An evaluation of many runs
(``--runs``) writes one report folder per run into its output folder, resumes: a run whose report
is current (:func:`cmkd_bounds.app.results.is_current`) is not evaluated again, and the summary table
and figure are rewritten at the end.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from cmkd_bounds.app import figures, results
from cmkd_bounds.app.bundle import feature_set_from_bundle, load_bundle
from cmkd_bounds.app.report import write_report
from cmkd_bounds.app.tables import csv_text, markdown
from cmkd_bounds.atomic import claim, file_sha256, output_folder, write_bytes, write_text
from cmkd_bounds.bound_report import BoundReport
from cmkd_bounds.features import FeatureSet
from cmkd_bounds.settings import BoundSettings
from cmkd_bounds.theorem import assemble


class Progress:
    """Phase lines on stderr (``[evaluate] 12.3 s: phase``), silent with ``quiet``; keeps each phase's duration."""

    def __init__(self, what: str, quiet: bool = False):
        self.what, self.quiet, self.t0 = what, quiet, time.perf_counter()
        self.phases: list[list] = []  # [name, start, seconds]

    def __call__(self, phase: str) -> None:
        now = time.perf_counter() - self.t0
        if self.phases:
            self.phases[-1][2] = now - self.phases[-1][1]
        self.phases.append([phase, now, None])
        if not self.quiet:
            print(f"[{self.what}] {now:7.1f} s: {phase}", file=sys.stderr, flush=True)

    def seconds(self) -> dict[str, float]:
        """Duration of every finished phase."""
        return {name: sec for name, _, sec in self.phases if sec is not None}


@dataclass(frozen=True, kw_only=True)
class Inputs:
    """What an evaluation is made of: the features, a title, where they came from, the held-out design the source
    dictates (``{"sampling": ..., "selected_among": ...}``, or nothing), the networks' structures (for the VC
    terms) and the notes the source adds to the assumptions."""

    features: FeatureSet
    title: str
    source: dict = field(default_factory=dict)
    design: dict = field(default_factory=dict)
    structures: dict | None = None
    notes: tuple[str, ...] = ()
    labelled_items: object = None  # indices of the student items whose labels may be used (a user's index file)


def read_index(path, n: int) -> np.ndarray:
    """The labelled items a user names: a ``.npy`` or a text file of distinct indices into ``n`` evaluation items."""
    p = Path(path)
    try:
        idx = np.load(p, allow_pickle=False) if p.suffix == ".npy" else np.loadtxt(p, dtype=float, ndmin=1)
    except (ValueError, OSError) as e:
        raise ValueError(f"--labelled-index {path}: not a .npy or text file of indices ({e})") from e
    idx = np.asarray(idx).reshape(-1)
    bad = not len(idx) or np.any(idx != np.round(idx)) or idx.min() < 0 or idx.max() >= n
    if bad or len(np.unique(idx)) != len(idx):
        raise ValueError(f"--labelled-index {path}: need distinct integer indices into the {n} evaluation items")
    return idx.astype(int)


def _evaluate(out, settings: BoundSettings, overwrite: bool, quiet: bool, make: Callable[..., Inputs]) -> BoundReport:
    """Claim ``out``, build the :class:`Inputs` with ``make(say)``, assemble the bounds and write the report folder
    atomically. ``source["settings"]`` keeps the settings asked for (what decides whether an evaluation is
    current); the report's ``settings`` are those used (the source's design applied)."""
    say = Progress("evaluate", quiet)
    with output_folder(out, overwrite) as tmp:
        inp = make(say)
        report = assemble(inp.features, replace(settings, **inp.design), progress=say, structures=inp.structures,
                          notes=inp.notes, labelled_items=inp.labelled_items)
        say("writing the report")
        say("done")
        write_report(report, tmp, title=inp.title, source={**inp.source, "settings": settings.as_dict(),
                                                           "phase_seconds": say.seconds()})
    return report


def evaluate_features(fs: FeatureSet, out: str | Path, settings: BoundSettings, *, overwrite: bool = False,
                      title: str = "Bound report", source: dict | None = None, quiet: bool = False) -> BoundReport:
    """Assemble the bounds of ``fs`` and write the report folder ``out`` (claimed for the whole run, atomic)."""
    return _evaluate(out, settings, overwrite, quiet, lambda say: Inputs(features=fs, title=title, source=source or {}))


def _index_source(labelled_index) -> dict:
    return {"labelled_index": str(Path(labelled_index).resolve()),
            "labelled_index_sha256": file_sha256(labelled_index)} if labelled_index else {}


def evaluate_bundle(path, out, settings: BoundSettings, *, overwrite=False, quiet=False,
                    labelled_index=None) -> BoundReport:
    def make(say):
        notes = ()
        if settings.posterior == "true":
            notes = ("the user asserted --posterior true: the teacher head's softmax is taken as the true posterior",)
        fs = feature_set_from_bundle(load_bundle(path))
        return Inputs(features=fs, title=f"Bound report for {Path(path).name}",
                      source={"bundle": str(Path(path).resolve()), "bundle_sha256": file_sha256(path),
                              **_index_source(labelled_index)}, notes=notes,
                      labelled_items=read_index(labelled_index, len(fs.student_y)) if labelled_index else None)

    return _evaluate(out, settings, overwrite, quiet, make)


def evaluate_checkpoints(teacher, student, out, settings: BoundSettings, *, split="test", overwrite=False,
                         quiet=False, labelled_index=None) -> BoundReport:
    """Bounds of a student checkpoint (and its teacher: given, or the one recorded in the student)."""
    from cmkd_bounds.app.bridge import features_from_checkpoints
    from training.checkpoint import read_checkpoint, resolve_teacher

    if settings.posterior == "true":
        raise ValueError("--posterior true asserts that the teacher head is the true posterior D_T(y|z), which holds "
                         "only in synthetic worlds built that way; checkpoints are evaluated with calibrated or raw")
    if teacher is None:
        meta, _ = read_checkpoint(student)
        teacher = resolve_teacher(meta, student)

    def make(say):
        cf = features_from_checkpoints(teacher, student, split, progress=say)
        info = cf.info
        title = (f"Bound report: {info['method']} student ({info['student_modality']}) taught by "
                 f"{info['teacher_modality']} on {info['data']}, seed {info['seed']}")
        split_note = (f"the student's items are its {split} split of {info['dataset']}"
                      + (" (splits given in the data file: taken as i.i.d. draws, the user's assumption)"
                         if info["splits_given"] else " (class-stratified, drawn from the split seed)")
                      + ("; its best epoch was chosen by accuracy on this split" if split == "val" else
                         "; neither model saw it in training or selection"))
        return Inputs(features=cf.features, title=title, source={**info, **_index_source(labelled_index)},
                      design={"sampling": info["sampling"], "selected_among": info["selected_among"]},
                      structures={r: info[f"{r}_structure"] for r in ("teacher", "student")}, notes=(split_note,),
                      labelled_items=read_index(labelled_index, len(cf.features.student_y)) if labelled_index
                      else None)

    return _evaluate(out, settings, overwrite, quiet, make)


# ----------------------------------------------------------------------------- many runs
def find_student_runs(runs: Path) -> list[Path]:
    from training.checkpoint import read_checkpoint

    found = []
    for ck in sorted(runs.rglob("best.safetensors")):
        meta, _ = read_checkpoint(ck)
        if meta.role == "student":
            found.append(ck)
    return found


def _evaluate_one(ck: Path, folder: Path, settings: BoundSettings, split: str, threads: int) -> None:
    """One task of ``evaluate --runs`` (a module-level function, so any executor can ship it)."""
    if threads:
        import torch

        torch.set_num_threads(threads)
    evaluate_checkpoints(None, ck, folder, settings, split=split, overwrite=True, quiet=True)


def evaluate_runs(runs: str | Path, out: str | Path, settings: BoundSettings, *, split="test", overwrite=False,
                  quiet=False, executor=None, threads: int = 0) -> list[dict]:
    """Evaluate every student run under ``runs`` into ``out/<run>/`` (resumable; one task per run through
    ``executor``, :mod:`cmkd_bounds.app.executors`) and write ``summary.csv``, ``summary.md`` and
    ``bound_gap_by_method.png`` across methods, label regimes and seeds."""
    from cmkd_bounds.app.executors import ExecutorSpec, run_tasks

    runs, out = Path(runs), Path(out)
    students = find_student_runs(runs)
    if not students:
        raise FileNotFoundError(f"{runs}: no student run (best.safetensors of a student) found")
    unfinished = [ck.parent for ck in students if not results.run_finished(ck.parent)]
    students = [ck for ck in students if results.run_finished(ck.parent)]
    if unfinished:  # a run still training (or cut) has no final checkpoint and no test accuracy: never mixed in
        print(f"evaluate --runs: skipping {len(unfinished)} unfinished run(s) (no result.json): "
              f"{', '.join(str(u.relative_to(runs)) for u in unfinished[:5])}"
              f"{' ...' if len(unfinished) > 5 else ''}", file=sys.stderr)
    if not students:
        raise FileNotFoundError(f"{runs}: every student run is unfinished (no result.json); finish or resume them")
    manifest = {"runs": str(runs.resolve()), "split": split, "settings": settings.as_dict()}
    with claim(out):
        if out.exists() and any(out.iterdir()):
            old = json.loads((out / "manifest.json").read_text()) if (out / "manifest.json").exists() else None
            if old != json.loads(json.dumps(manifest)) and not overwrite:
                raise FileExistsError(f"{out} holds an evaluation with other inputs or settings: pass --overwrite to "
                                      "replace it, or choose another --out")
            if overwrite and old != json.loads(json.dumps(manifest)):
                import shutil

                shutil.rmtree(out)
        write_text(out / "manifest.json", json.dumps(manifest, indent=2) + "\n")
        named = [(str(ck.parent.relative_to(runs)).replace("/", "__") or "run", ck) for ck in students]
        todo = [(ck, out / name) for name, ck in named if results.is_current(out / name, ck, settings) is None]
        spec = executor or ExecutorSpec("local", 1)
        alone = spec.kind == "local" and spec.jobs <= 1
        run_tasks(spec, _evaluate_one, [(ck, folder, settings, split, threads or (0 if alone else 1))
                                        for ck, folder in todo], "evaluate --runs", quiet)
        rows = [results.summary_row(name, ck, results.read_bound(out / name)) for name, ck in named]
        write_text(out / "summary.csv", csv_text(rows))
        skipped = (f"\nSkipped {len(unfinished)} unfinished run(s) (no result.json): "
                   f"{', '.join(str(u.relative_to(runs)) for u in unfinished)}.\n" if unfinished else "")
        write_text(out / "summary.md", markdown(rows, list(results.SUMMARY_COLUMNS)) + skipped)
        write_bytes(out / "bound_gap_by_method.png", figures.fig_runs(rows))
    return rows
