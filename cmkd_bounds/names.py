"""The name of every bound form, headline and term: defined here once, used everywhere through these constants.

A *form* is one bound (``BoundReport.bounds``, the ``bounds`` of ``bound.json``); a *headline* names the form a
report puts first for one question (``bound_certified``: the sharpest certified transfer bound); a *term* is a part
of the bounds or a quantity beside them (``BoundReport.terms``). Tables name a form's column ``bound_<form>``
(:func:`bound_column`). Nothing else in the package spells these strings (``tests/test_names.py`` checks).
"""

from __future__ import annotations

# ----------------------------------------------------------------------------- forms
ASYMPTOTIC_FEATURE = "asymptotic_feature"  # the paper's Theorem 2.6 on the empirical measures (plug-in)
ASYMPTOTIC_SHARPEST = "asymptotic_sharpest"  # the same with the sharpest transport and the log C cap (plug-in)
CLASS_CONDITIONAL = "class_conditional"  # per-class transports of the clipped CE (plug-in)
CERTIFIED_MARGINAL = "certified_marginal"  # held-out certificate + the marginal form's slack
CERTIFIED_CLASS_CONDITIONAL = "certified_class_conditional"  # held-out certificate + the class form's slack
HELD_OUT_BETTING = "held_out_betting"
HELD_OUT_KL = "held_out_kl"
HELD_OUT_HOEFFDING = "held_out_hoeffding"
HELD_OUT_BERNSTEIN = "held_out_bernstein"
ERROR01_CLOPPER_PEARSON = "error01_clopper_pearson"
FINITE_SAMPLE_PAPER = "finite_sample_paper"  # the paper's Theorem 2.7 route (estimated)
FINITE_SAMPLE_ESTIMATED = "finite_sample_estimated"  # the same with fitted rates (estimated)
PAPER_STYLE = "paper_style"  # what the official code logs (not a bound)

# few labels (cmkd_bounds.fewlabel): population certificates; ``pool_form`` names the pool certificate of each
FEW_BETTING = "few_betting"
FEW_KL = "few_kl"
FEW01_HYPERGEOMETRIC = "few01_hypergeometric"
FEW01_BETTING = "few01_betting"
SURROGATE_THEORY_F = "theory_f"  # the teacher's expected loss at the student's feature
SURROGATE_STUDENT_ENTROPY = "student_entropy"
SURROGATE_TEACHER_CONFIDENCE = "teacher_confidence"  # 1 - max p of the teacher head at the student's feature
SURROGATE_STUDENT_CONFIDENCE = "student_confidence"
SURROGATES = (SURROGATE_THEORY_F, SURROGATE_STUDENT_ENTROPY, SURROGATE_TEACHER_CONFIDENCE,
              SURROGATE_STUDENT_CONFIDENCE)


def few_ppi(surrogate: str) -> str:
    """The prediction-powered certificate with ``surrogate``: ``few_ppi_<g>`` (CE) or ``few01_ppi_<g>`` (0-1)."""
    return f"few01_ppi_{surrogate}" if surrogate.endswith("confidence") else f"few_ppi_{surrogate}"


def few_ppipp(surrogate: str) -> str:
    """The PPI++ certificate (lambda from a fixed grid) with ``surrogate``."""
    return f"few01_ppipp_{surrogate}" if surrogate.endswith("confidence") else f"few_ppipp_{surrogate}"


def pool_form(form: str) -> str:
    """The pool-level certificate behind a few-label population certificate: ``<form>_pool``."""
    return f"{form}_pool"


FEW_LABEL = (FEW_BETTING, FEW_KL, *(f(s) for f in (few_ppi, few_ppipp) for s in SURROGATES[:2]),
             FEW01_HYPERGEOMETRIC, FEW01_BETTING, *(f(s) for f in (few_ppi, few_ppipp) for s in SURROGATES[2:]))
FEW_LABEL_POOL = tuple(pool_form(f) for f in FEW_LABEL)

CERTIFIED_TRANSFER = (CERTIFIED_MARGINAL, CERTIFIED_CLASS_CONDITIONAL)
HELD_OUT = (HELD_OUT_BETTING, HELD_OUT_KL, HELD_OUT_HOEFFDING, HELD_OUT_BERNSTEIN, ERROR01_CLOPPER_PEARSON)
FORMS = (ASYMPTOTIC_FEATURE, ASYMPTOTIC_SHARPEST, CLASS_CONDITIONAL, *CERTIFIED_TRANSFER, *HELD_OUT, *FEW_LABEL,
         *FEW_LABEL_POOL, FINITE_SAMPLE_PAPER, FINITE_SAMPLE_ESTIMATED, PAPER_STYLE)

# ----------------------------------------------------------------------------- headlines
BOUND_ASYMPTOTIC = "bound_asymptotic"
BOUND_CERTIFIED = "bound_certified"
HELD_OUT_CERTIFICATE = "held_out_certificate"
ERROR01_CERTIFICATE = "error01_certificate"
BOUND_PAPER_STYLE = "bound_paper_style"
HEADLINES = (BOUND_ASYMPTOTIC, BOUND_CERTIFIED, HELD_OUT_CERTIFICATE, ERROR01_CERTIFICATE, BOUND_PAPER_STYLE)

# ----------------------------------------------------------------------------- terms
TEACHER_TERM = "teacher_term"  # E^_T f
STUDENT_TERM = "student_term"  # E^_S f
STUDENT_TERM_UPPER = "student_term_upper"  # a certificate of E_{P_S} f (no student label)
LABEL_ALIGNMENT = "label_alignment"
LABEL_ALIGNMENT_CLIPPED = "label_alignment_clipped"
LABEL_ALIGNMENT_OFFICIAL = "label_alignment_official"
LABEL_ALIGNMENT_RATIO = "label_alignment_ratio"
CLASS_DELTA = "class_delta"
TAU_FEATURE = "tau_feature"
TAU_LOWER = "tau_lower"
TAU_CLASS_FEATURE = "tau_class_feature"
TAU_CLASS_MARGIN = "tau_class_margin"
DEVIATION_STUDENT = "deviation_student"
DEVIATION_TEACHER = "deviation_teacher"
DEVIATION_STUDENT_ESTIMATED = "deviation_student_estimated"
DEVIATION_TEACHER_ESTIMATED = "deviation_teacher_estimated"
W1_FEATURE = "w1_feature"  # a table column: W1 between the feature clouds

# the transports of the teacher's expected loss, by representation (``Transport.name``)
FEATURE, FEATURE_TRUNCATED, LOGIT_L2, LOGIT_OSC = "feature", "feature_truncated", "logit_l2", "logit_osc"
TRANSPORTS = (FEATURE, FEATURE_TRUNCATED, LOGIT_L2, LOGIT_OSC)
TRANSPORT_FEATURE, TRANSPORT_FEATURE_TRUNCATED, TRANSPORT_LOGIT_L2, TRANSPORT_LOGIT_OSC = (
    f"transport_{t}" for t in TRANSPORTS)
TAU_LOGIT_L2, TAU_LOGIT_OSC = "tau_logit_l2", "tau_logit_osc"
VC_TERM_TEACHER, VC_TERM_STUDENT = "vc_term_teacher", "vc_term_student"
PREDICTOR_DOC, PREDICTOR_ATC, PREDICTOR_COT = "predictor_doc", "predictor_atc", "predictor_cot"
PREDICTORS = (PREDICTOR_DOC, PREDICTOR_ATC, PREDICTOR_COT)

TERMS = (TEACHER_TERM, STUDENT_TERM, STUDENT_TERM_UPPER, LABEL_ALIGNMENT, LABEL_ALIGNMENT_CLIPPED,
         TRANSPORT_FEATURE, TRANSPORT_FEATURE_TRUNCATED, TRANSPORT_LOGIT_L2, TRANSPORT_LOGIT_OSC, TAU_FEATURE,
         TAU_LOGIT_L2, TAU_LOGIT_OSC, TAU_LOWER, CLASS_DELTA, DEVIATION_STUDENT, DEVIATION_TEACHER,
         DEVIATION_STUDENT_ESTIMATED, DEVIATION_TEACHER_ESTIMATED,
         LABEL_ALIGNMENT_OFFICIAL, LABEL_ALIGNMENT_RATIO, VC_TERM_TEACHER, VC_TERM_STUDENT, TAU_CLASS_FEATURE,
         TAU_CLASS_MARGIN, *PREDICTORS)


def transport_term(transport: str) -> str:
    """The term that holds a transport's value: ``transport_<name>``."""
    return f"transport_{transport}"


def bound_column(form: str) -> str:
    """A form's column in the tables: ``bound_<form>``."""
    return f"bound_{form}"


ALL = frozenset(FORMS + HEADLINES + TERMS + (W1_FEATURE,))
