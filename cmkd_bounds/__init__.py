"""cmkd-bounds: estimate every term of the UCMKD risk bounds from checkpoints, and say what each number is.

The public face, for a notebook or a script (each name is imported on first use, so ``import cmkd_bounds``
stays cheap)::

    import numpy as np
    from cmkd_bounds import FeatureSet, assemble, names

    report = assemble(FeatureSet(**np.load("bundle.npz")), eta=0.05)   # every bound, typed
    print(report.bound(names.BOUND_CERTIFIED).value, report.summary)  # a certificate, in words

- bounds: :func:`assemble` (features -> :class:`BoundReport`), :class:`FeatureSet`, :class:`BoundSettings`,
  :func:`evaluate_features` (the same, written as a report folder), :mod:`names` (every form and term),
  :class:`Term` and :data:`KINDS` (what a number is);
- transport: :func:`wasserstein1` (alias :func:`w1`), :func:`w1_exact`, :func:`w1_bracket`;
- certificates: :func:`betting_upper`, :func:`kl_upper`, :func:`clopper_pearson`, :func:`hoeffding`.

Layers (imports point down only; ``tests/test_layers.py`` checks it):

1. the mathematics, no I/O: ``kinds``, ``names``, ``costs``, ``concentration``, ``wasserstein``, ``rates``,
   ``lipschitz``, ``complexity``, ``label_kernel``, ``features``, ``settings``, ``bound_report``, ``theorem``;
2. data and models: ``training.data``, ``training.datasets``, ``training.arrays``,
   ``training.synthetic``, ``training.protocols``, ``training.models``;
3. training: ``training.alignment``, ``training.methods``, ``training.batches``, ``training.config``,
   ``training.checkpoint``, ``training.prepare``, ``training.run_folder``, ``training.loop``;
4. the application: ``cmkd_bounds.app`` (command line, evaluation, results, reports, figures, experiments).

``cmkd_bounds.atomic`` (atomic writes, claims, digests; standard library only) serves every layer. The
table below names modules of layers 1 and 4 as strings: the package root imports nothing until a name
is asked for.
"""

__version__ = "0.3.0"

_PUBLIC = {
    "assemble": "cmkd_bounds.theorem",
    "BoundReport": "cmkd_bounds.bound_report",
    "BoundSettings": "cmkd_bounds.settings",
    "FeatureSet": "cmkd_bounds.features",
    "Term": "cmkd_bounds.kinds",
    "KINDS": "cmkd_bounds.kinds",
    "evaluate_features": "cmkd_bounds.app.evaluate",
    "wasserstein1": "cmkd_bounds.wasserstein",
    "w1_exact": "cmkd_bounds.wasserstein",
    "w1_bracket": "cmkd_bounds.wasserstein",
    "betting_upper": "cmkd_bounds.concentration",
    "kl_upper": "cmkd_bounds.concentration",
    "clopper_pearson": "cmkd_bounds.concentration",
    "hoeffding": "cmkd_bounds.concentration",
}
__all__ = [*_PUBLIC, "w1", "names", "__version__"]


def __getattr__(name: str):
    import importlib

    if name == "names":
        return importlib.import_module("cmkd_bounds.names")
    if name == "w1":
        name = "wasserstein1"
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'cmkd_bounds' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
