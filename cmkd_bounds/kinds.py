"""Kinds of number, what a bound bounds, and the small typed result every estimator returns.

Kinds (strongest first):

- ``certified``: with probability at least ``1 - eta`` over the samples it bounds the *population*
  quantity it names (or it is an exact/deterministic bound), under assumptions that can hold and
  are stated in ``note``;
- ``plug-in``: a population bound evaluated on the empirical measures. It bounds the *empirical*
  quantity deterministically, and estimates the population bound; it is not a certificate for the
  population (it can undershoot the population risk by sampling error);
- ``estimated``: a consistent estimate that can fall on either side of the truth;
- ``lower``: a value known to lie below the truth.

A bound assembled from several terms is labelled by its weakest kind (:func:`weakest`): one
estimated term makes the whole bound estimated.

What a bound bounds (``target``): the population clipped risk ``E min(l, c)``, the population 0-1
error, the empirical (test-sample) risk, or the empirical clipped risk. A term that is not a bound
has no target.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

CERTIFIED, PLUG_IN, ESTIMATED, LOWER = "certified", "plug-in", "estimated", "lower"
KINDS = (CERTIFIED, PLUG_IN, ESTIMATED, LOWER)  # strongest first

POPULATION_CLIPPED_RISK = "population clipped risk"
POPULATION_ERROR01 = "population 0-1 error"
EMPIRICAL_RISK = "empirical risk"
EMPIRICAL_CLIPPED_RISK = "empirical clipped risk"
TARGETS = (POPULATION_CLIPPED_RISK, POPULATION_ERROR01, EMPIRICAL_RISK, EMPIRICAL_CLIPPED_RISK)


def weakest(*kinds: str) -> str:
    """The weakest of ``kinds`` in the order certified > plug-in > estimated > lower."""
    for k in kinds:
        if k not in KINDS:
            raise ValueError(f"unknown kind {k!r}; expected one of {KINDS}")
    return max(kinds, key=KINDS.index) if kinds else CERTIFIED


@dataclass(frozen=True)
class Term:
    """A named number with its kind, what it bounds (if it is a bound), its assumption and diagnostics."""

    name: str
    value: float
    kind: str
    note: str = ""
    diagnostics: dict = field(default_factory=dict)
    target: str | None = None

    def __post_init__(self):
        weakest(self.kind)  # validates
        if self.target is not None and self.target not in TARGETS:
            raise ValueError(f"unknown target {self.target!r}; expected one of {TARGETS}")

    def as_dict(self) -> dict:
        return asdict(self)
