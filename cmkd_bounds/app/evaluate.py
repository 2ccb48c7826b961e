"""Evaluation: checkpoints or a features bundle -> features -> bounds -> a report folder; and many runs at once.

A single evaluation writes its folder atomically (a crash never leaves a half-written folder) and
claims it for the whole run (a second writer gets a clear error). An evaluation of many runs
(``--runs``) writes one report folder per run into its output folder, resumes: a run whose report
exists with the same inputs (checkpoint digests and settings) is not evaluated again, and the
summary table and figure are rewritten at the end.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from cmkd_bounds.app.bundle import feature_set_from_bundle, load_bundle
from cmkd_bounds.app.report import FILES, write_report
from cmkd_bounds.app.tables import csv_text, markdown
from cmkd_bounds.atomic import claim, file_sha256, output_folder, write_bytes, write_text
from cmkd_bounds.complexity import vc_dimension_upper, vc_uniform_term
from cmkd_bounds.features import FeatureSet
from cmkd_bounds.settings import BoundSettings
from cmkd_bounds.theorem import BoundReport, assemble


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


def _evaluate(out, settings: BoundSettings, overwrite: bool, quiet: bool, make) -> BoundReport:
    """Claim ``out``, build the inputs with ``make(say)`` (features, title, source, extra terms and assumptions,
    and the held-out design the source dictates: ``{"sampling": ..., "selected_among": ...}`` or ``{}``),
    assemble the bounds and write the report folder atomically. ``source["settings"]`` keeps the settings asked
    for (what decides whether an evaluation is current); the report's ``settings`` are those used."""
    say = Progress("evaluate", quiet)
    with output_folder(out, overwrite) as tmp:
        fs, title, source, extra_terms, extra_assumptions, design = make(say)
        report = assemble(fs, replace(settings, **design), progress=say)
        report.terms.extend(extra_terms)
        report.assumptions.extend(extra_assumptions)
        say("writing the report")
        say("done")
        write_report(report, tmp, title=title, source={**(source or {}), "settings": settings.as_dict(),
                                                       "phase_seconds": say.seconds()})
    return report


def evaluate_features(fs: FeatureSet, out: str | Path, settings: BoundSettings, *, overwrite: bool = False,
                      title: str = "Bound report", source: dict | None = None, quiet: bool = False) -> BoundReport:
    """Assemble the bounds of ``fs`` and write the report folder ``out`` (claimed for the whole run, atomic)."""
    return _evaluate(out, settings, overwrite, quiet, lambda say: (fs, title, source, (), (), {}))


def evaluate_bundle(path, out, settings: BoundSettings, *, overwrite=False, quiet=False) -> BoundReport:
    def make(say):
        extra = []
        if settings.posterior == "true":
            extra.append("the user asserted --posterior true: the teacher head's softmax is taken as the true "
                         "posterior")
        return (feature_set_from_bundle(load_bundle(path)), f"Bound report for {Path(path).name}",
                {"bundle": str(Path(path).resolve()), "bundle_sha256": file_sha256(path)}, (), extra, {})

    return _evaluate(out, settings, overwrite, quiet, make)


def _vc_terms(info: dict, fs: FeatureSet, eta: float, clip: float):
    out = []
    for role, n in (("teacher", len(fs.teacher_y)), ("student", len(fs.student_y))):
        st = info[f"{role}_structure"]
        out.append(vc_uniform_term(vc_dimension_upper(st["params"], st["units_per_layer"]), n, eta, clip,
                                   name=f"vc_term_{role}"))
    return out


def evaluate_checkpoints(teacher, student, out, settings: BoundSettings, *, split="test", overwrite=False,
                         quiet=False) -> BoundReport:
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
                 f"{info['teacher_modality']}, {info['dataset']}, seed {info['seed']}")
        split_note = (f"the student's items are its {split} split of {info['dataset']}"
                      + (" (splits given in the data file: taken as i.i.d. draws, the user's assumption)"
                         if info["splits_given"] else " (class-stratified, drawn from the split seed)")
                      + ("; its best epoch was chosen by accuracy on this split" if split == "val" else
                         "; neither model saw it in training or selection"))
        return (cf.features, title, info, _vc_terms(info, cf.features, settings.eta, settings.loss_clip),
                [split_note, "VC terms (Bartlett et al. 2019, Theorem 7) are shown for comparison only; they are not "
                 "part of any bound above"],
                {"sampling": info["sampling"], "selected_among": info["selected_among"]})

    return _evaluate(out, settings, overwrite, quiet, make)


# ----------------------------------------------------------------------------- many runs
def find_student_runs(runs: Path) -> list[Path]:
    from training.checkpoint import read_checkpoint

    found = []
    for ck in sorted(runs.rglob("best.safetensors")):
        meta, _ = read_checkpoint(ck)
        if meta.kind == "student":
            found.append(ck)
    return found


def run_row(name: str, ck: Path, report: dict) -> dict:
    """One row of the summary table: the run's hyperparameters, observations, every bound and the key terms."""
    src = report.get("source", {})
    cfg = src.get("config", {})
    run = ck.parent
    res = json.loads((run / "result.json").read_text()) if (run / "result.json").exists() else {}
    hist = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()] \
        if (run / "metrics.jsonl").exists() else []
    terms = {t["name"]: t["value"] for t in report["terms"]}
    row = {"run": name, "direction": "audio->image" if cfg.get("swap") else "image->audio",
           "dataset": cfg.get("dataset"), "method": cfg.get("method"), "protocol": cfg.get("protocol"),
           "labels_per_class": cfg.get("labels_per_class", 0), "seed": cfg.get("seed"),
           "lambda_fa": cfg.get("lambda_fa"), "inner_lr": cfg.get("inner_lr"), "n1": cfg.get("n1"),
           "test_acc": res.get("test_acc"), "train_ce": hist[-1].get("ce") if hist else None,
           "steer_cos": res.get("steer_cos_mean"),
           "observed_risk": report["observed_risk"], "observed_risk_clipped": report["observed_risk_clipped"],
           "observed_error01": report["observed_error01"]}
    for k, b in report["bounds"].items():
        row[f"bound_{k}"] = b["value"]
    for k in ("teacher_term", "student_term", "label_alignment", "label_alignment_clipped", "class_delta",
              "transport_feature", "transport_feature_truncated", "transport_logit_l2", "transport_logit_osc",
              "tau_feature", "tau_lower"):
        row[k] = terms.get(k)
    row["w1_feature"] = next((t["w1"] for t in report.get("transports", []) if t["name"] == "feature"), None)
    row["teacher_head_on_student_error01"] = report["observed"].get("teacher_head_on_student_error01")
    return row


def evaluate_runs(runs: str | Path, out: str | Path, settings: BoundSettings, *, split="test", overwrite=False,
                  quiet=False) -> list[dict]:
    """Evaluate every student run under ``runs`` into ``out/<run>/`` (resumable) and write ``summary.csv``,
    ``summary.md`` and ``bound_gap_by_method.png`` across methods, label regimes and seeds."""
    from tqdm.auto import tqdm

    runs, out = Path(runs), Path(out)
    students = find_student_runs(runs)
    if not students:
        raise FileNotFoundError(f"{runs}: no student run (best.safetensors of kind student) found")
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
        rows, bar = [], tqdm(students, desc="evaluate --runs", disable=quiet)
        for ck in bar:
            name = str(ck.parent.relative_to(runs)).replace("/", "__") or "run"
            bar.set_postfix_str(name[-40:])
            folder = out / name
            report = _reuse(folder, ck)
            if report is None:
                evaluate_checkpoints(None, ck, folder, settings, split=split, overwrite=True, quiet=True)
                report = json.loads((folder / "bound.json").read_text())
            rows.append(run_row(name, ck, report))
        write_text(out / "summary.csv", csv_text(rows))
        keys = ["run", "method", "labels_per_class", "seed", "test_acc", "observed_risk", "observed_error01",
                "bound_asymptotic_sharpest", "bound_asymptotic_feature", "bound_certified_marginal",
                "bound_held_out_kl", "bound_paper_style"]
        write_text(out / "summary.md", markdown(rows, keys))
        write_bytes(out / "bound_gap_by_method.png", _fig_runs(rows))
    return rows


def _reuse(folder: Path, ck: Path) -> dict | None:
    """The existing report of a run when its checkpoint is unchanged (settings are checked by the manifest)."""
    f = folder / "bound.json"
    if not (f.exists() and all((folder / x).exists() for x in FILES)):
        return None
    d = json.loads(f.read_text())
    return d if d.get("source", {}).get("student_sha256") == file_sha256(ck) else None


def _fig_runs(rows) -> bytes:
    from cmkd_bounds.app.report import _plt, _png

    plt = _plt()
    panels = sorted({(r["direction"], r["labels_per_class"]) for r in rows}, key=str)
    methods = sorted({r["method"] for r in rows})
    colors = dict(zip(methods, ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b2", "#937860", "#da8bc3")))
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4), squeeze=False)
    for ax, (direction, k) in zip(axes[0], panels):
        rs = [r for r in rows if (r["direction"], r["labels_per_class"]) == (direction, k)]
        for m in methods:
            mr = [r for r in rs if r["method"] == m]
            if not mr:
                continue
            x = [r["observed_risk"] for r in mr]
            ax.scatter(x, [r["bound_asymptotic_sharpest"] for r in mr], color=colors[m], marker="o", s=18,
                       label=f"{m}: asymptotic (plug-in)")
            ax.scatter(x, [r[f"bound_{_best_cert(r)}"] for r in mr], color=colors[m], marker="^", s=18,
                       label=f"{m}: certified")
        lim = [min(r["observed_risk"] for r in rs) * 0.8, max(max(r["bound_asymptotic_feature"] for r in rs), 1) * 1.2]
        ax.plot(lim, lim, "k:", lw=1)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("observed test CE")
        ax.set_title(f"{direction}, {'all labels' if not k else f'{k} labels/class'}", fontsize=9)
    axes[0][0].set_ylabel("bound (nats)")
    axes[0][-1].legend(fontsize=6, loc="upper left", bbox_to_anchor=(1, 1))
    return _png(fig)


def _best_cert(r: dict) -> str:
    cands = [k for k in ("certified_marginal", "certified_class_conditional") if r.get(f"bound_{k}") is not None]
    return min(cands, key=lambda k: r[f"bound_{k}"])
