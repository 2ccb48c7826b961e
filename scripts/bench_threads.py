"""Does ``--threads 1`` help on a busy machine? The same training, 2 torch threads against 1, under load.

Writes reports/benchmarks/threads.{md,json}.

Run: python scripts/bench_threads.py [--load 2] [--repeats 2] [--epochs 1]

The job: ``cmkd-bounds train --role teacher`` on avmnist (the MNIST CNN, the heaviest step of the quickstart) for
``--epochs`` epochs in a fresh folder, as a separate process. ``--load`` busy processes (pure Python loops, one
core each) stand for the other work of a shared machine; they run through every measurement. The two settings
alternate (1, 2, 1, 2, ...) so a drift of the machine touches both; the ratio is of medians measured in one run.
A second pass without the load shows what the threads buy on an idle machine.
"""

import argparse
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cmkd_bounds.app.tables import markdown
from cmkd_bounds.atomic import write_text

OUT = Path(__file__).resolve().parents[1] / "reports" / "benchmarks"


def _spin(stop):
    x = 0
    while not stop.is_set():
        for _ in range(100_000):
            x = (x * 31 + 7) % 1_000_003


def _train(threads: int, epochs: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "cmkd_bounds", "train", "--role", "teacher", "--dataset", "avmnist",
               "--epochs", str(epochs), "--threads", str(threads), "--out", str(Path(tmp) / "t"), "--quiet"]
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, env=env, capture_output=True)
        return time.perf_counter() - t0


def measure(threads=(1, 2), repeats: int = 2, epochs: int = 1, load: int = 0) -> dict:
    stop = mp.Event()
    spinners = [mp.Process(target=_spin, args=(stop,), daemon=True) for _ in range(load)]
    for p in spinners:
        p.start()
    try:
        times = {t: [] for t in threads}
        for _ in range(repeats):
            for t in threads:
                times[t].append(_train(t, epochs))
    finally:
        stop.set()
        for p in spinners:
            p.join()
    return {str(t): v for t, v in times.items()}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--load", type=int, default=2, help="busy processes running beside the training")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--epochs", type=int, default=1)
    a = p.parse_args()
    cmd = "python scripts/bench_threads.py" + "".join(
        f" --{k} {v}" for k, v in vars(a).items() if v != p.get_default(k))
    res = {"cores": os.cpu_count(), "command": cmd, "load_average_1min_before": round(os.getloadavg()[0], 2),
           "loaded": measure(repeats=a.repeats, epochs=a.epochs, load=a.load),
           "idle": measure(repeats=a.repeats, epochs=a.epochs, load=0), "busy_processes": a.load}
    res["load_average_1min_after"] = round(os.getloadavg()[0], 2)
    rows = []
    for setting in ("loaded", "idle"):
        med = {t: statistics.median(v) for t, v in res[setting].items()}
        rows.append({"machine": f"{a.load} busy processes" if setting == "loaded" else "no added load",
                     "--threads 1 (s)": f"{med['1']:.1f}", "--threads 2 (s)": f"{med['2']:.1f}",
                     "threads 2 / threads 1": f"{med['2'] / med['1']:.2f}x"})
        res[f"{setting}_ratio_2_over_1"] = med["2"] / med["1"]
    write_text(OUT / "threads.json", json.dumps(res, indent=1))
    write_text(OUT / "threads.md", "\n".join([
        "# Torch threads on a shared machine", "",
        f"Written by `{cmd}` on {res['cores']} cores (1-minute load average {res['load_average_1min_before']} "
        f"before, {res['load_average_1min_after']} after): wall time of `cmkd-bounds train --role teacher "
        f"--dataset avmnist --epochs {a.epochs}` (a fresh process each time, median of {a.repeats}), the two "
        "settings alternating.", "", markdown(rows).strip(), "",
        "A ratio above 1 means the second thread costs time: torch's threads wait on each other at every "
        "operation, and a core taken by other work stalls them all.", ""]))
    print((OUT / "threads.md").read_text())


if __name__ == "__main__":
    main()
