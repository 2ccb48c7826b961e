"""Kinds of number, what a bound bounds, and the small typed result every estimator returns.

Kinds (strongest first):

- ``certified``: with probability at least ``1 - eta`` over the samples it bounds the *population*
  quantity it names, under assumptions that can hold and are stated in ``note``; or it is a
  deterministic fact about fixed functions that no sample enters (the Lipschitz constant of a
  fixed head);
- ``sample``: exact, or a proved upper bound, for the *samples at hand* (the exact W1 between two
  empirical measures, the upper end of a certified bracket of it, ``L W1(P^_S, P^_T)`` as a bound
  on the empirical transport ``E^_S f - E^_T f``). It says nothing about the population by itself:
  as an estimate of the population quantity it can fall on either side;
- ``plug-in``: a population bound evaluated on the empirical measures. It bounds the *empirical*
  quantity deterministically, and estimates the population bound; it is not a certificate for the
  population (it can undershoot the population risk by sampling error);
- ``estimated``: a consistent estimate that can fall on either side of the truth;
- ``lower``: a value known to lie below the truth.

A bound assembled from several terms is labelled by its weakest kind (:func:`weakest`): one
estimated term makes the whole bound estimated. :func:`proved` says whether a value may enter a
certificate's deterministic part (certified or sample: a true bound, of the population or of the
sample).

What a bound bounds (``target``): the population clipped risk ``E min(l, c)``, the population 0-1
error, the empirical (test-sample) risk, the empirical clipped risk, or the clipped risk and 0-1 error of a
finite pool of items most of whose labels are unknown (:mod:`cmkd_bounds.fewlabel`). A term that is not a
bound has no target.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

CERTIFIED, SAMPLE, PLUG_IN, ESTIMATED, LOWER = "certified", "sample", "plug-in", "estimated", "lower"
KINDS = (CERTIFIED, SAMPLE, PLUG_IN, ESTIMATED, LOWER)  # strongest first
KIND_MEANINGS = {
    CERTIFIED: "holds for the population with probability at least 1 - eta under the stated assumptions (or a "
               "deterministic fact about a fixed function, such as the Lipschitz constant of a fixed head)",
    SAMPLE: "exact (or a proved upper bound) for the samples at hand; says nothing about the population by itself",
    PLUG_IN: "the population bound evaluated on the samples: it bounds the test-sample quantity exactly and "
             "estimates the population bound; not a certificate",
    ESTIMATED: "a consistent estimate that can fall on either side of the truth",
    LOWER: "known to lie below the truth",
}

POPULATION_CLIPPED_RISK = "population clipped risk"
POPULATION_ERROR01 = "population 0-1 error"
EMPIRICAL_RISK = "empirical risk"
EMPIRICAL_CLIPPED_RISK = "empirical clipped risk"
POOL_CLIPPED_RISK = "pool clipped risk"  # the clipped risk over a finite pool of items, most of them unlabelled
POOL_ERROR01 = "pool 0-1 error"
TARGETS = (POPULATION_CLIPPED_RISK, POPULATION_ERROR01, EMPIRICAL_RISK, EMPIRICAL_CLIPPED_RISK, POOL_CLIPPED_RISK,
           POOL_ERROR01)


def weakest(*kinds: str) -> str:
    """The weakest of ``kinds`` in the order certified > sample > plug-in > estimated > lower."""
    for k in kinds:
        if k not in KINDS:
            raise ValueError(f"unknown kind {k!r}; expected one of {KINDS}")
    return max(kinds, key=KINDS.index) if kinds else CERTIFIED


def proved(kind: str) -> bool:
    """A true bound (of the population with probability ``>= 1 - eta``, or of the sample exactly)."""
    weakest(kind)
    return kind in (CERTIFIED, SAMPLE)


@dataclass(frozen=True, kw_only=True)
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
