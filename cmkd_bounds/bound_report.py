"""What :func:`cmkd_bounds.theorem.assemble` returns: the report's typed records and the ``bound.json`` layout.

- :class:`Observed`: the observed risks and errors the bounds are compared with;
- :class:`GapStep`: one step of a chain that explains a bound's gap, from the observed risk to the bound;
- :class:`Headline`: a headline (:data:`cmkd_bounds.names.HEADLINES`) resolved to its form, value and kind;
- :class:`BoundReport`: every form, term, transport, chain and assumption, with :meth:`BoundReport.to_dict`
  the one definition of the ``bound.json`` layout (written and read by ``cmkd_bounds.app.results``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from cmkd_bounds import names
from cmkd_bounds.kinds import CERTIFIED, EMPIRICAL_CLIPPED_RISK, POPULATION_CLIPPED_RISK, POPULATION_ERROR01, Term
from cmkd_bounds.rates import RateCurve
from cmkd_bounds.settings import BoundSettings


@dataclass(frozen=True, kw_only=True)
class Observed:
    """The student's observed held-out risk (CE), clipped risk and 0-1 error, and the teacher's."""

    risk: float
    risk_clipped: float
    error01: float
    errors: int
    teacher_risk: float
    teacher_risk_calibrated: float
    teacher_error01: float
    teacher_head_on_student_error01: float
    n_student: int
    n_teacher: int

    def as_dict(self) -> dict:
        return asdict(self)


START, STEP, END, ASIDE = "start", "step", "end", "aside"  # where a step sits in its chain


@dataclass(frozen=True, kw_only=True)
class GapStep:
    """One step of a gap chain: the observed value (``part = start``), an increment (``step``), the bound
    (``end``), or a value shown beside the chain (``aside``)."""

    step: str
    value: float
    part: str = STEP
    note: str = ""

    def as_dict(self) -> dict:
        out = {"step": self.step, "value": self.value}
        if self.note:
            out["note"] = self.note
        if self.part != STEP:
            out["part"] = self.part
        return out


@dataclass(frozen=True, kw_only=True)
class Headline:
    """A headline resolved: the form it names, and that form's value, kind, target and note."""

    key: str
    form: str
    value: float
    kind: str
    bounds: str | None
    note: str

    def as_dict(self) -> dict:
        return {"value": self.value, "form": self.form, "kind": self.kind, "bounds": self.bounds, "note": self.note}


@dataclass(kw_only=True)
class BoundReport:
    """Everything :func:`cmkd_bounds.theorem.assemble` computed; :meth:`to_dict` is the ``bound.json`` layout."""

    settings: BoundSettings
    observed: Observed
    terms: list[Term]
    bounds: dict[str, Term]
    headline: dict[str, str]  # a headline of names.HEADLINES -> the form it names in `bounds`
    assumptions: list[str]
    chains: dict[str, list[GapStep]] = field(default_factory=dict)
    summary: str = ""
    transports: list = field(default_factory=list)  # theorem.Transport
    rate_curves: dict[str, RateCurve] = field(default_factory=dict)
    per_class: list[dict] = field(default_factory=list)
    temperature: dict = field(default_factory=dict)
    pool: dict = field(default_factory=dict)  # the few-label setting: the pool, its size and labelled items
    items: dict = field(default_factory=dict)  # per student item arrays (cmkd_bounds.theorem._items); not in JSON

    def term(self, name: str) -> Term:
        for t in self.terms:
            if t.name == name:
                return t
        raise KeyError(name)

    def bound(self, headline: str) -> Term:
        return self.bounds[self.headline[headline]]

    def headline_record(self, key: str) -> Headline:
        b = self.bound(key)
        return Headline(key=key, form=self.headline[key], value=b.value, kind=b.kind, bounds=b.target, note=b.note)

    @property
    def certified(self) -> bool:
        """Whether the headline transfer bound is a certificate (it is not under a cost that cannot certify)."""
        return self.bound(names.BOUND_CERTIFIED).kind == CERTIFIED

    @property
    def not_certified(self) -> list[str]:
        """The assumptions that say a part of the report is not certified."""
        return [a for a in self.assumptions if "NOT CERTIFIED" in a]

    def observed_for(self, b: Term) -> float:
        """The observed value a bound is compared with: the clipped risk for clipped targets, else the risk."""
        if b.target == POPULATION_ERROR01:
            return self.observed.error01
        if b.target in (POPULATION_CLIPPED_RISK, EMPIRICAL_CLIPPED_RISK):
            return self.observed.risk_clipped
        return self.observed.risk

    def gap(self, name: str) -> dict:
        b = self.bounds[name]
        o = self.observed_for(b)
        return {"absolute": b.value - o, "relative": (b.value - o) / b.value if b.value > 0 else math.nan,
                "observed": o}

    def to_dict(self) -> dict:
        o = self.observed
        return {
            "observed_risk": o.risk,
            "observed_risk_clipped": o.risk_clipped,
            "observed_error01": o.error01,
            **{k: self.headline_record(k).as_dict() for k in self.headline},
            "certified": self.certified,
            "gap": {k: self.gap(k) for k in self.bounds},
            "bounds": {k: {"value": b.value, "kind": b.kind, "bounds": b.target, "note": b.note,
                           "diagnostics": b.diagnostics} for k, b in self.bounds.items()},
            "gap_explained": {k: [s.as_dict() for s in chain] for k, chain in self.chains.items()},
            "summary": self.summary,
            "terms": [t.as_dict() for t in self.terms],
            "transports": [{"name": t.name, "lipschitz": t.lipschitz.value, "lipschitz_kind": t.lipschitz.kind,
                            "w1": t.w1.value, "w1_method": t.w1.method, "w1_kind": t.w1.kind,
                            "truncated_at": t.truncated_at, "value": t.value, "kind": t.kind,
                            "w1_diagnostics": {k: v for k, v in t.w1.diagnostics.items()
                                               if isinstance(v, (int, float, bool, str))}}
                           for t in self.transports],
            "observed": o.as_dict(),
            "per_class": self.per_class,
            "temperature": self.temperature,
            "settings": self.settings.as_dict(),
            "assumptions": self.assumptions,
            **({"pool": self.pool} if self.pool else {}),
        }
