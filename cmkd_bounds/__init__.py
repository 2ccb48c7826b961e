"""cmkd-bounds: estimate every term of the UCMKD risk bounds from checkpoints, and say what each number is.

Layers (imports point down only; ``tests/test_layers.py`` checks it):

1. the mathematics, no I/O: ``kinds``, ``costs``, ``concentration``, ``wasserstein``, ``rates``,
   ``lipschitz``, ``complexity``, ``label_kernel``, ``features``, ``settings``, ``theorem``;
2. data and models: ``training.data``, ``training.datasets``, ``training.arrays``,
   ``training.synthetic``, ``training.protocols``, ``training.models``;
3. training: ``training.alignment``, ``training.methods``, ``training.batches``, ``training.config``,
   ``training.checkpoint``, ``training.run_folder``, ``training.loop``;
4. the application: ``cmkd_bounds.app`` (command line, evaluation, reports, experiments).

``cmkd_bounds.atomic`` (atomic writes, claims, digests; standard library only) serves every layer.
The public face of the bounds: :func:`cmkd_bounds.theorem.assemble` on a
:class:`cmkd_bounds.features.FeatureSet` with :class:`cmkd_bounds.settings.BoundSettings`.
"""

__version__ = "0.2.0"
