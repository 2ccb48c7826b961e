"""cmkd-bounds: estimate every term of the UCMKD risk bounds from checkpoints.

The pure-mathematics modules (``costs``, ``kinds``, ``wasserstein``, ``rates``, ``lipschitz``,
``complexity``, ``label_kernel``, ``theorem``) do no I/O and import nothing from ``training``.
"""

__version__ = "0.1.0"
