"""Kinds of number and the small typed result every estimator returns.

- ``certified``: a true upper bound (or exact value) under the assumptions stated in ``note``;
- ``estimated``: a consistent estimate that can fall on either side of the truth;
- ``lower``: a value known to lie below the truth.

A bound assembled from several terms is labelled by its weakest kind (:func:`weakest`): one
estimated term makes the whole bound estimated, one lower-bound term inside an upper bound makes
it a ``lower``-kind (not an upper bound at all).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

CERTIFIED, ESTIMATED, LOWER = "certified", "estimated", "lower"
KINDS = (CERTIFIED, ESTIMATED, LOWER)  # strongest first


def weakest(*kinds: str) -> str:
    """The weakest of ``kinds`` in the order certified > estimated > lower."""
    for k in kinds:
        if k not in KINDS:
            raise ValueError(f"unknown kind {k!r}; expected one of {KINDS}")
    return max(kinds, key=KINDS.index) if kinds else CERTIFIED


@dataclass(frozen=True)
class Term:
    """A named number with its kind, the assumption it rests on, and diagnostics."""

    name: str
    value: float
    kind: str
    note: str = ""
    diagnostics: dict = field(default_factory=dict)

    def __post_init__(self):
        weakest(self.kind)  # validates

    def as_dict(self) -> dict:
        return asdict(self)
