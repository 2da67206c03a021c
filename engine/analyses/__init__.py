"""Analyses: read-only observers any run can turn on (see base.py), one module each.

`MODULES` lists them explicitly (no directory scan), as the component packages do;
`engine.catalog.load_all()` imports them so that their `@ANALYSES.register` decorators run.
Importing this package is cheap and torch-free.
"""

from __future__ import annotations

MODULES = ("curves", "sparsity", "class_probs", "weight_updates", "gradients", "histograms",
           "plasticity", "probes", "latent")
