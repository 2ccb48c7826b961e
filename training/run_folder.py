"""A training run's folder: claimed for the whole run, reused only for the same configuration.

Layout: ``config.json`` (the full configuration), ``metrics.jsonl`` (one line per epoch),
``last.safetensors`` + ``state.pt`` (the newest weights and optimiser state, to resume),
``best.safetensors`` (the selected weights) and ``result.json`` (written last: the run finished).

Rules, in one place:

- the folder is claimed (:func:`cmkd_bounds.atomic.claim`) while a run writes it: a second writer
  gets a clear error;
- a folder holding a finished or interrupted run with the *same* configuration (except
  :data:`training.config.RESUMABLE_CHANGES`) is continued: a finished run is returned as it is, an
  interrupted one resumes from its last epoch (and ends with the weights of an uninterrupted run);
- a different configuration is refused, naming the first field that differs, unless ``overwrite``;
- a folder whose run never finished an epoch (it failed before) holds nothing worth keeping and is
  started afresh, with a message.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from cmkd_bounds.atomic import write_text
from training.config import TrainConfig

RUN_FILES = ("config.json", "metrics.jsonl", "last.safetensors", "state.pt", "best.safetensors", "result.json")


class RunFolder:
    def __init__(self, cfg: TrainConfig):
        self.cfg, self.path = cfg, Path(cfg.out)

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def finished(self) -> bool:
        return self.file("result.json").exists()

    def saved_config(self) -> dict | None:
        f = self.file("config.json")
        return json.loads(f.read_text()) if f.exists() else None

    def decide(self) -> str:
        """``"fresh"``, ``"resume"`` or ``"done"``, applying the rules of the module docstring."""
        cfg, p = self.cfg, self.path
        if not p.exists() or not any(x for x in p.iterdir() if not x.name.startswith(".")):
            return "fresh"
        if cfg.overwrite:
            self.clear()
            return "fresh"
        saved = self.saved_config()
        has_epoch = self.file("state.pt").exists()
        if saved is None and not has_epoch:
            foreign = [x.name for x in p.iterdir() if not x.name.startswith(".") and x.name not in RUN_FILES]
            if foreign:
                raise FileExistsError(f"run folder {p} holds files that are not a run ({', '.join(foreign[:3])}): "
                                      "choose another --out, or pass --overwrite")
        if saved is not None:
            diff = cfg.differences(saved)
            if diff and (has_epoch or self.finished):
                k, (old, new) = next(iter(diff.items()))
                raise ValueError(f"{p} holds a run with another configuration ({k}: {old!r} there, {new!r} now); "
                                 "rerun with the same options to continue it, or pass --overwrite / another --out")
        if self.finished and saved is not None and not has_epoch:  # results kept without the resume state
            if self._epochs_done() != cfg.epochs:
                raise ValueError(f"{p} holds a finished run of {self._epochs_done()} epochs without its resume state "
                                 f"(state.pt), so it cannot continue to {cfg.epochs}: pass --overwrite or choose "
                                 "another --out")
            if not cfg.resume:
                raise FileExistsError(f"run folder {p} holds a run and --no-resume was given: pass --overwrite or "
                                      "choose another --out")
            return "done"
        if not has_epoch:
            print(f"cmkd-bounds: {p} holds a run that never finished an epoch; starting it afresh", file=sys.stderr)
            self.clear()
            return "fresh"
        if not cfg.resume:
            raise FileExistsError(f"run folder {p} holds a run and --no-resume was given: pass --overwrite or "
                                  "choose another --out")
        done = self._epochs_done()
        if done > cfg.epochs:
            raise ValueError(f"{p} holds a run of {done} epochs and this run asks for {cfg.epochs}: pass --overwrite "
                             "or choose another --out")
        if self.finished and done < cfg.epochs:  # allowed (the config is otherwise the same), never silent
            print(f"cmkd-bounds: {p} holds a finished run of {done} epochs; extending it to {cfg.epochs} (its best "
                  "epoch is chosen anew among all of them)", file=sys.stderr)
        return "done" if self.finished and done == cfg.epochs else "resume"

    def _epochs_done(self) -> int:
        f = self.file("metrics.jsonl")
        return len(f.read_text().splitlines()) if f.exists() else 0

    def clear(self) -> None:
        for name in RUN_FILES:
            self.file(name).unlink(missing_ok=True)

    def history(self, epochs_done: int) -> list[dict]:
        return [json.loads(line) for line in self.file("metrics.jsonl").read_text().splitlines()][:epochs_done]

    def write_config(self) -> None:
        write_text(self.file("config.json"), json.dumps(self.cfg.to_dict(), indent=2) + "\n")

    def write_metrics(self, history: list[dict]) -> None:
        write_text(self.file("metrics.jsonl"), "".join(json.dumps(r) + "\n" for r in history))

    def write_result(self, result: dict) -> None:
        self.file("result.json").unlink(missing_ok=True)
        write_text(self.file("result.json"), json.dumps(result, indent=2) + "\n")

    def result(self) -> dict:
        return json.loads(self.file("result.json").read_text())
