"""Cost of the UCMKD bi-level step against a CE step (and the deep-copy implementation of the
official code), on the default benchmark's real batches; writes reports/benchmarks/bilevel.{json,md}.

Run: python scripts/bench_bilevel.py [--steps 40] [--threads 1]
Steps of the methods are interleaved round by round, so the machine's load affects them alike;
the table reports ratios to CE measured in the same run.
"""

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from cmkd_bounds.atomic import write_text  # noqa: E402
from training.alignment import feature_alignment, label_alignment  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.datasets import load_pair  # noqa: E402
from training.methods import Batch, make_method  # noqa: E402
from training.models import Model, make_spec  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "reports" / "benchmarks"


class DeepCopyUCMKD:
    """The official code's pattern, for comparison only: deep-copy the student, fresh inner AdamW."""

    def __init__(self, cfg, model, opt, teacher_head):
        self.cfg, self.model, self.opt, self.teacher_head = cfg, model, opt, teacher_head

    def step(self, b):
        cfg = self.cfg
        twin = copy.deepcopy(self.model)
        enc = [p for n, p in twin.named_parameters() if not n.startswith("classifier.")]
        inner = torch.optim.AdamW(enc, lr=cfg.inner_lr, weight_decay=cfg.inner_wd)
        fa = feature_alignment(twin.encode(b.x, b.lengths), b.zt, cfg.cost, cfg.reg, cfg.sinkhorn_iters)
        inner.zero_grad()
        fa.backward()
        inner.step()
        head = torch.optim.AdamW(twin.classifier.parameters(), lr=cfg.inner_lr, weight_decay=cfg.inner_wd)
        z = twin.encode(b.x, b.lengths).detach()
        la = label_alignment(twin.head(z), self.teacher_head(z), b.y)
        head.zero_grad()
        la.backward()
        head.step()
        twin.zero_grad()
        ce = F.cross_entropy(twin(b.x, b.lengths), b.y)
        ce.backward()
        self.opt.zero_grad()
        for p, q in zip(self.model.parameters(), twin.parameters()):
            p.grad = q.grad
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.clip)
        self.opt.step()
        return {"loss": ce.item()}


def batches(student, teacher_feats, n, bs, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        i = rng.choice(len(student), bs, replace=False)
        j = rng.choice(len(teacher_feats), bs, replace=False)
        lengths = None if student.lengths is None else student.lengths[i]
        out.append(Batch(x=student.x[i], y=student.y[i], lengths=lengths,
                         zt=teacher_feats[j], tlogits=torch.zeros(bs, 10)))
    return out


def bench(swap: bool, steps: int, bs: int = 64):
    pair = load_pair("avmnist", swap=swap)
    student = pair.split(0)["train"].student
    torch.manual_seed(0)
    teacher_feats = torch.randn(500, 64)
    teacher_head = torch.nn.Linear(64, 10).requires_grad_(False)
    data = batches(student, teacher_feats, steps + 5, bs)
    runners = {}
    for name in ("ce", "feature_kd", "joint", "ucmkd", "ucmkd_no_steer", "ucmkd_deepcopy"):
        method = {"ucmkd_no_steer": "ucmkd", "ucmkd_deepcopy": "ucmkd"}.get(name, name)
        cfg = TrainConfig(method=method, teacher="x", steer_every=0 if name != "ucmkd" else 50)
        model = Model(make_spec(student, 64))
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
        runners[name] = (DeepCopyUCMKD(cfg, model, opt, teacher_head) if name == "ucmkd_deepcopy"
                         else make_method(cfg, model, opt, teacher_head=teacher_head))
        model.train()
    times = {k: [] for k in runners}
    for i, b in enumerate(data):
        for k, r in runners.items():
            t = time.perf_counter()
            r.step(b)
            if i >= 5:  # warm-up
                times[k].append(time.perf_counter() - t)
    med = {k: float(np.median(v)) for k, v in times.items()}
    return {"student": student.name, "steps": steps, "batch": bs, "median_step_s": med,
            "ratio_to_ce": {k: v / med["ce"] for k, v in med.items()}}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    res = {"threads": torch.get_num_threads(), "runs": [bench(False, a.steps), bench(True, a.steps)]}
    write_text(OUT / "bilevel.json", json.dumps(res, indent=2) + "\n")
    lines = ["# Cost of the bi-level step", "",
             f"Written by `python scripts/bench_bilevel.py --steps {a.steps}` ({res['threads']} torch threads): median "
             "time of one training step on the same avmnist batches (64 items), methods interleaved; ratio to a CE "
             "step. `ucmkd` includes the steering diagnostic every 50 steps; `ucmkd_deepcopy` is the official code's "
             "pattern (deep copy + fresh inner optimisers), kept in the script for comparison only.", "",
             "| student | " + " | ".join(res["runs"][0]["ratio_to_ce"]) + " |",
             "| --- |" + " --- |" * len(res["runs"][0]["ratio_to_ce"])]
    for r in res["runs"]:
        lines.append(f"| {r['student']} (CE step {1000 * r['median_step_s']['ce']:.1f} ms) | " +
                     " | ".join(f"{v:.2f}x" for v in r["ratio_to_ce"].values()) + " |")
    write_text(OUT / "bilevel.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
