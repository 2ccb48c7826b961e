"""The application layer: command line, run folders, the checkpoint-to-features bridge, reports and experiments.

It sits on top of everything else (it may import the bounds mathematics and ``training``); nothing
below imports it.
"""
