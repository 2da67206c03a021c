"""CL methods, one file each, plugging into engine.loop through the hooks of base.Method.

MODULES lists every module that registers a method; `engine.catalog.load_all()` imports them.
A new method is one file here (options dataclass + `@METHODS.register(...)` class) plus its name in
this tuple.
"""

MODULES = ("finetune", "multitask", "scratch", "ewc", "si", "masking", "masking_si", "coresets", "hnet", "ogd",
           "cbp", "shrink_perturb", "head_reset", "retrained", "supsup")
