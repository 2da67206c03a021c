"""Main networks: ordinary nn.Modules following the contract in engine.models.base.

MODULES lists every module that registers a model; `engine.catalog.load_all()` imports them.
A new model is one file here (options dataclass + `@MODELS.register(...)` class) plus its name in
this tuple.
"""

MODULES = ("mlp", "lstm", "resnet18", "supermask", "supermask_resnet")
