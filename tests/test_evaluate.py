"""`cmkd-bounds evaluate --features` end to end: files, keys, kinds, every sample used, atomic claimed folders."""

import csv
import io
import json
import threading

import numpy as np
import pytest

from cmkd_bounds.app.bundle import BundleError, load_bundle
from cmkd_bounds.app.cli import main
from cmkd_bounds.app.results import REPORT_FILES as FILES
from cmkd_bounds.kinds import KINDS
from training.synthetic import SyntheticWorld

FAST = ["--quiet"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    w = SyntheticWorld(num_classes=3, feature_shift=0.7, label_shift=0.5, seed=7)
    fs = w.feature_set(300, 200, np.random.default_rng(0), with_calibration=False)
    path = tmp_path_factory.mktemp("b") / "bundle.npz"
    np.savez(path, **{k: v for k, v in fs.__dict__.items() if v is not None})
    return path


def test_evaluate_bundle_writes_every_output(bundle, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["evaluate", "--features", str(bundle), "--out", str(out), *FAST]) == 0
    printed = capsys.readouterr().out
    assert "bound_certified" in printed and "held_out_certificate" in printed
    assert {p.name for p in out.iterdir()} == set(FILES)
    d = json.loads((out / "bound.json").read_text())
    for key in ("observed_risk", "observed_error01", "gap", "terms", "bound_asymptotic", "bound_certified",
                "held_out_certificate", "error01_certificate", "bound_paper_style", "bounds", "summary"):
        assert key in d
    for key in ("bound_asymptotic", "bound_certified", "held_out_certificate", "error01_certificate"):
        assert {"value", "form", "kind", "bounds"} <= set(d[key])
    assert d["bound_certified"]["kind"] == "certified" and d["bound_certified"]["bounds"] == "population clipped risk"
    assert d["bound_paper_style"]["bounds"] is None  # not a bound
    assert all({"value", "kind", "bounds"} <= set(b) for b in d["bounds"].values())
    b = d["bounds"]["asymptotic_feature"]
    assert d["gap"]["asymptotic_feature"]["absolute"] == pytest.approx(b["value"] - d["observed_risk"])
    rows = list(csv.DictReader((out / "terms.csv").open()))
    assert {r["kind"] for r in rows} <= set(KINDS)
    # issue 18 #2: a transport between the two samples is a sample quantity, never a certificate
    assert {r["kind"] for r in rows if r["name"].startswith("transport_")} == {"sample"}
    assert {t["kind"] for t in d["transports"]} == {"sample"}
    assert (out / "gap_waterfall.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "report.md").read_text()
    assert "## Assumptions" in md and "The gap explained" in md and md.splitlines()[2].startswith("This student")


def test_every_teacher_sample_is_used(tmp_path):
    """Issue 11 #6: without calibration arrays no sample is set aside: W1(P, P + a) = |a| exactly."""
    rng = np.random.default_rng(1)
    z = rng.normal(size=(200, 3))
    y = np.arange(200) % 2
    a = np.array([0.3, 0.0, 0.0])
    W, b = np.array([[1.0, 0, 0], [-1.0, 0, 0]]), np.zeros(2)
    f = tmp_path / "t.npz"
    np.savez(f, teacher_z=z, teacher_y=y, student_z=z + a, student_y=y, teacher_W=W, teacher_b=b, student_W=W,
             student_b=b)
    assert main(["evaluate", "--features", str(f), "--out", str(tmp_path / "o"), *FAST]) == 0
    d = json.loads((tmp_path / "o" / "bound.json").read_text())
    feat = next(t for t in d["transports"] if t["name"] == "feature")
    assert feat["w1"] == pytest.approx(0.3, rel=1e-9)
    assert d["observed"]["n_teacher"] == 200 and d["temperature"]["how"] == "in-sample"


def test_existing_folder_needs_overwrite_and_stays_intact(bundle, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("previous run")
    assert main(["evaluate", "--features", str(bundle), "--out", str(out), *FAST]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "previous run"
    assert main(["evaluate", "--features", str(bundle), "--out", str(out), "--overwrite", *FAST]) == 0
    assert not (out / "keep.txt").exists() and (out / "bound.json").exists()  # never a mix of two runs
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary leftovers or locks


def test_a_second_writer_is_refused_while_the_first_runs(bundle, tmp_path, capsys):
    """Issue 9 #3: the output folder is claimed for the whole run."""
    from cmkd_bounds.app import evaluate

    out = tmp_path / "out"
    started, release = threading.Event(), threading.Event()
    real = evaluate.write_report

    def slow(*a, **k):
        started.set()
        release.wait(30)
        return real(*a, **k)

    evaluate.write_report = slow
    try:
        first = threading.Thread(target=main, args=(["evaluate", "--features", str(bundle), "--out", str(out),
                                                     *FAST],))
        first.start()
        assert started.wait(60)
        evaluate.write_report = real
        assert main(["evaluate", "--features", str(bundle), "--out", str(out), "--overwrite", *FAST]) == 2
        err = capsys.readouterr().err
        assert "being written by another run" in err
        release.set()
        first.join()
    finally:
        evaluate.write_report = real
        release.set()
    assert (out / "bound.json").exists()


def test_bad_bundles_get_clear_errors(tmp_path, bundle, capsys):
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(BundleError, match="empty"):
        load_bundle(empty)
    trunc = tmp_path / "trunc.npz"
    trunc.write_bytes(bundle.read_bytes()[:300])
    with pytest.raises(BundleError, match="truncated or corrupted"):
        load_bundle(trunc)
    partial = tmp_path / "partial.npz"
    np.savez(partial, teacher_z=np.zeros((3, 2)))
    with pytest.raises(BundleError, match="missing array"):
        load_bundle(partial)
    pick = tmp_path / "pickle.npz"
    np.savez(pick, **{k: np.array([object()], dtype=object) for k in ("teacher_z",)})
    with pytest.raises(BundleError, match="pickle"):
        load_bundle(pick)
    npy = tmp_path / "one.npy"  # issue 9 #7: a single array is a clear error, not an internal TypeError
    np.save(npy, np.zeros(3))
    assert main(["evaluate", "--features", str(npy), "--out", str(tmp_path / "o")]) == 2
    assert "a single array (.npy)" in capsys.readouterr().err


def test_the_runs_figure_draws_every_method_in_its_own_colour():
    """evaluate --runs on the grid (nine methods) failed drawing its figure: the palette had seven colours."""
    from matplotlib.image import imread

    from cmkd_bounds import names
    from cmkd_bounds.app import figures

    methods = ("ce", "vanilla_kd", "feature_kd", "joint", "ucmkd", "deepjdot", "dann", "coral", "ot_pseudo")
    rows = [{"direction": "image->audio", "labels_per_class": 10, "method": m, "observed_risk": 0.1 + 0.01 * i,
             names.bound_column(names.ASYMPTOTIC_SHARPEST): 2.0 + i, names.bound_column(names.ASYMPTOTIC_FEATURE): 3.0,
             **{names.bound_column(k): 1.0 + i for k in names.CERTIFIED_TRANSFER}} for i, m in enumerate(methods)]
    png = figures.fig_runs(rows)
    assert imread(io.BytesIO(png)).ndim == 3
    fig_colours = {m: figures.method_colour(methods, m) for m in methods}
    assert len(set(fig_colours.values())) == len(methods)
