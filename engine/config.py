"""The one strict schema of a run, loaded from a TOML preset plus `--set key=value` overrides.

A preset states only what differs from the defaults below. Component tables (`[benchmark]`,
`[model]`, `[method]`) hold a `name` and that component's own options, validated against the
dataclass registered for the name (engine.registry). Torch-free at import; validating a config
fills the registries (engine.catalog.load_all), which imports the components and so torch.
"""

from __future__ import annotations

import copy
import json
import math
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from engine.errors import ConfigError, suggest
from engine.registry import BENCHMARKS, METHODS, MODELS, ComponentRegistry
from engine.schema import SchemaError, build, opt, to_dict

FORMAT_VERSION = 1
MAX_BATCH = 60_000
"""Largest training or evaluation batch: MNIST's whole training set, the largest set any task here has.
A larger batch only repeats samples, and 10^8 ran out of memory 47 s into a run instead of being refused."""
MAX_THREADS = 1024
"""Largest `threads`: more than the cores of any machine cltui runs on; torch would start them all."""
MAX_LR = 1e6
"""Largest training.lr: beyond it a value is a typo, not a learning rate (at 1e38 Adam's first step size,
lr / (1 - β1), overflowed float32 and the run failed with a bare RuntimeError)."""


@dataclass(frozen=True)
class TrainingConfig:
    """Optimisation and the shape of each phase: its length, stop rules, validation, LR schedule, optimizer.

    Phase length: `steps_per_task` optimizer steps, or `epochs_per_task` epochs when that is > 0. An
    epoch of a phase is ceil(N / batch_size) steps, N = the training samples of the phase's tasks
    together (after the validation hold-out); the samplers run on across epoch ends, so when the batch
    size does not divide N an epoch's last batch already starts the next sweep. Stop rules are checked
    at every epoch end (and the train-accuracy rule only there); the validation accuracy also at the
    phase's last step. See engine/phases.py.
    """

    steps_per_task: int = opt(1000, "optimizer steps per task (n_iter); multitask runs this × num_tasks")
    epochs_per_task: int = opt(0, "phase length in epochs of the phase's training set instead of steps; 0 = use steps_per_task")
    max_steps_per_phase: int = opt(0, "stop rule: end a phase after this many steps whatever its length; 0 = off")
    stop_train_acc: float = opt(0.0, "stop rule: end a phase at the first epoch whose train accuracy (%, over all of that epoch's batches) is >= this; 0 = off")
    val_fraction: float = opt(0.0, "hold out this fraction of each task's training set for validation (rounded up); 0 = no validation")
    val_per_task: int = opt(0, "hold out this many samples of each task's training set for validation; 0 = use val_fraction")
    early_stop_patience: int = opt(0, "stop rule: end a phase after this many epochs without a better validation accuracy; 0 = off (needs validation)")
    restore_best: bool = opt(False, "at a phase's end, restore the weights of its best validation accuracy (needs validation)")
    test_every_epoch: bool = opt(False, "also measure the test accuracy (%) of the phase's tasks at each epoch end (series epoch_test_acc)")
    batch_size: int = opt(128, f"training batch size (1 to {MAX_BATCH:,})")
    optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = opt("adam", "optimizer: adam, adamw (decoupled weight decay), sgd, rmsprop")
    lr: float = opt(1e-3, "base learning rate (> 0, at most 1e6)")
    lr_schedule: Literal["constant", "step", "cosine", "cosine_epochs"] = opt("constant", "LR within each phase: constant; step = ×lr_gamma at each milestone; cosine = from lr down to lr_min; cosine_epochs = the same cosine moved once per epoch (PyTorch's CosineAnnealingLR stepped each epoch, T_max = the phase's epochs). Every phase restarts it")
    lr_gamma: float = opt(0.1, "step schedule: factor applied at each milestone (0 < γ <= 1)")
    lr_milestones: list[float] = opt([], "step schedule: milestones as fractions of each phase's length, e.g. [0.5, 0.75]")
    lr_milestone_epochs: list[int] = opt([], "step schedule: milestones as epochs into each phase, e.g. [60, 120, 160]")
    lr_min: float = opt(0.0, "cosine schedules: learning rate at the phase's end (>= 0, < lr)")
    adam_beta1: float = opt(0.9, "Adam/AdamW β1")
    adam_beta2: float = opt(0.999, "Adam/AdamW β2")
    eps: float = opt(1e-8, "Adam/AdamW/RMSprop ε added to the denominator")
    momentum: float = opt(0.0, "SGD/RMSprop momentum")
    nesterov: bool = opt(False, "SGD: Nesterov momentum (needs momentum > 0)")
    rmsprop_alpha: float = opt(0.99, "RMSprop smoothing constant α")
    weight_decay: float = opt(0.0, "weight decay inside the optimizer (L2 for sgd/adam/rmsprop, decoupled for adamw)")
    l1_activation: float = opt(0.0, "L1 activation penalty λ: loss += λ·Σ_layers mean|h| over the model's unit layers, from the step's own forward (0 = off)")
    reset_optimizer: bool = opt(True, "create a fresh optimizer at every task (the reference behaviour)")
    clip_grad_norm: float = opt(-1.0, "global L2 gradient-norm clip; -1 = off")
    log_every: int = opt(10, "record training scalars every N steps")

    def __post_init__(self) -> None:
        # Every message starts with the field's name; engine.schema.build puts "training." in front.
        for n in ("lr", "lr_gamma", "lr_min", "adam_beta1", "adam_beta2", "eps", "momentum", "rmsprop_alpha",
                  "weight_decay", "clip_grad_norm", "stop_train_acc", "val_fraction", "l1_activation"):
            if not math.isfinite(getattr(self, n)):  # the schema refuses these too; this guards direct use
                raise ValueError(f"{n} = {getattr(self, n)!r} is not a finite number")
        for n in ("steps_per_task", "batch_size", "log_every"):
            if getattr(self, n) < 1:
                raise ValueError(f"{n} = {getattr(self, n)!r} must be >= 1")
        if self.batch_size > MAX_BATCH:
            raise ValueError(f"batch_size = {self.batch_size!r} is larger than {MAX_BATCH:,} (MNIST's whole "
                             "training set); a batch larger than a task's training set only repeats samples "
                             "and may not fit in memory")
        for n in ("epochs_per_task", "max_steps_per_phase", "early_stop_patience", "val_per_task"):
            if getattr(self, n) < 0:
                raise ValueError(f"{n} = {getattr(self, n)!r} must be >= 0 (0 = off)")
        if not 0 < self.lr <= MAX_LR:  # beyond, an optimizer's step size overflows float32 (Adam: lr / (1 - β1^t))
            raise ValueError(f"lr = {self.lr!r} must be > 0 and at most {MAX_LR:g}")
        if not 0 <= self.stop_train_acc <= 100:
            raise ValueError(f"stop_train_acc = {self.stop_train_acc!r} is a percentage: 0 (off) to 100")
        if not 0 <= self.val_fraction < 1:
            raise ValueError(f"val_fraction = {self.val_fraction!r} must be in [0, 1)")
        if self.val_fraction > 0 and self.val_per_task > 0:
            raise ValueError("val_fraction and val_per_task: set one, not both")
        validation = self.val_fraction > 0 or self.val_per_task > 0
        if (self.early_stop_patience > 0 or self.restore_best) and not validation:
            n = "early_stop_patience" if self.early_stop_patience > 0 else "restore_best"
            raise ValueError(f"{n} needs a validation split (val_fraction or val_per_task)")
        if not 0 < self.lr_gamma <= 1:
            raise ValueError(f"lr_gamma = {self.lr_gamma!r} must be in (0, 1]")
        if any(not 0 < f < 1 for f in self.lr_milestones):
            raise ValueError(f"lr_milestones = {self.lr_milestones!r}: fractions strictly between 0 and 1")
        if any(e < 1 for e in self.lr_milestone_epochs):
            raise ValueError(f"lr_milestone_epochs = {self.lr_milestone_epochs!r}: epochs >= 1")
        if self.lr_milestones and self.lr_milestone_epochs:
            raise ValueError("lr_milestones and lr_milestone_epochs: set one, not both")
        if self.lr_schedule == "step" and not (self.lr_milestones or self.lr_milestone_epochs):
            raise ValueError("lr_schedule = 'step' needs lr_milestones or lr_milestone_epochs")
        if self.lr_schedule != "step" and (self.lr_milestones or self.lr_milestone_epochs):
            raise ValueError("lr_milestones/lr_milestone_epochs only apply to lr_schedule = 'step'")
        if not 0 <= self.lr_min < self.lr:
            raise ValueError(f"lr_min = {self.lr_min!r} must be >= 0 and below lr ({self.lr!r})")
        for n in ("adam_beta1", "adam_beta2"):
            if not 0 <= getattr(self, n) < 1:
                raise ValueError(f"{n} = {getattr(self, n)!r} must be in [0, 1)")
        if self.eps <= 0:
            raise ValueError(f"eps = {self.eps!r} must be > 0")
        for n in ("momentum", "weight_decay", "l1_activation"):
            if getattr(self, n) < 0:
                raise ValueError(f"{n} = {getattr(self, n)!r} must be >= 0")
        if not 0 <= self.rmsprop_alpha <= 1:
            raise ValueError(f"rmsprop_alpha = {self.rmsprop_alpha!r} must be in [0, 1]")
        if self.clip_grad_norm <= 0 and self.clip_grad_norm != -1:
            raise ValueError(f"clip_grad_norm = {self.clip_grad_norm!r} must be > 0, or -1 (off)")
        if self.nesterov and (self.optimizer != "sgd" or self.momentum <= 0):
            raise ValueError("nesterov needs optimizer = 'sgd' and momentum > 0")


@dataclass(frozen=True)
class EvaluationConfig:
    batch_size: int = opt(2000, f"evaluation batch size (1 to {MAX_BATCH:,})")
    initial: bool = opt(True, "test the untrained network on every task first (needed for forward transfer)")
    task_inference: Literal["given", "h", "g"] = opt("given", "'given' = the true task is known at test time (the accuracy matrix); 'h' / 'g' = also infer it from the first example of each test batch, by SupSup's one-shot entropy (h) or superfluous-unit (g) objective (engine/inference.py; needs a method that can, e.g. supsup)")
    inference_at: list[int] = opt([], "task inference runs when this many tasks have been learned, e.g. [10, 50, 250]; [] = after every task")
    inference_batch_size: int = opt(128, f"task inference: test batch size; each batch's task is inferred from its first example (1 to {MAX_BATCH:,})")
    upper: Literal["none", "next", "all"] = opt("next", "after each phase, test the tasks not trained yet: 'next' = only the next phase's (what forward transfer needs), 'all' = every one (the full matrix), 'none' = none. Seen tasks are always tested")

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= MAX_BATCH:
            raise ValueError(f"batch_size = {self.batch_size!r} must be 1 to {MAX_BATCH:,} (a task's test set "
                             "is never larger)")
        if not 1 <= self.inference_batch_size <= MAX_BATCH:
            raise ValueError(f"inference_batch_size = {self.inference_batch_size!r} must be 1 to {MAX_BATCH:,}")
        if any(k < 1 for k in self.inference_at) or sorted(set(self.inference_at)) != list(self.inference_at):
            raise ValueError(f"inference_at = {self.inference_at!r}: task counts >= 1, increasing, each once")


@dataclass(frozen=True)
class CheckpointConfig:
    every_task: bool = opt(True, "write a checkpoint at every task end")
    every_steps: int = opt(0, "also write one every N steps inside a task (0 = off)")
    every_seconds: float = opt(60.0, "also write one at the first step after this many seconds since the last (0 = off); a kill loses at most this much training. Measured cost: well under 1% of run time at 60 s")
    on_interrupt: bool = opt(True, "write a checkpoint when the run is interrupted (Ctrl-C, SIGTERM)")
    keep: int = opt(2, "checkpoint files kept (newest first); an older one is used when a newer one fails its checksum")

    def __post_init__(self) -> None:
        if self.every_steps < 0 or not self.every_seconds >= 0 or self.every_seconds == float("inf"):
            raise ValueError("every_steps and every_seconds must be >= 0 (0 = off) and finite")
        if self.keep < 1:
            raise ValueError("keep must be at least 1")


@dataclass(frozen=True)
class Reference:
    during: float | None = opt(None, "published during accuracy (%)")
    final: float | None = opt(None, "published final accuracy (%)")
    source: str = opt("", "where the number comes from")
    notes: str = opt("", "caveats, e.g. why a value is not meaningful")
    final_meaningful: bool = opt(True, "False when the published 'final' is not a meaningful number")


@dataclass(frozen=True)
class Component:
    """A registered component: its name and its validated options dataclass."""

    name: str
    options: Any


@dataclass(frozen=True)
class RunConfig:
    name: str = opt("custom", "preset name")
    description: str = opt("", "one line on what this experiment is")
    seed: int = opt(0, "random seed of the run (torch, numpy, python, batch order); 0 to 2^63 - 1")
    device: Literal["auto", "cpu", "cuda"] = opt("auto", "'auto' = CUDA when present, else CPU")
    threads: int = opt(0, f"torch intra-op CPU threads (0 = torch's default, at most {MAX_THREADS}); 1 avoids oversubscription on a busy machine")
    deterministic: bool = opt(True, "CUDA: deterministic cuDNN/cuBLAS/torch kernels, so a run (and its resume) is exact bit for bit; costs speed (convolutions ~10-30 %, scatter-heavy ops more) and 32 MiB of GPU memory; no effect on the CPU (engine/determinism.py)")
    benchmark: Component = opt(None, "benchmark table")
    model: Component = opt(None, "model table")
    method: Component = opt(None, "method table")
    training: TrainingConfig = opt(TrainingConfig(), "optimisation")
    evaluation: EvaluationConfig = opt(EvaluationConfig(), "evaluation")
    checkpoint: CheckpointConfig = opt(CheckpointConfig(), "checkpointing")
    reference: Reference = opt(Reference(), "published result this preset reproduces")
    analyses: tuple[Component, ...] = opt((), "observers ([analyses.<name>] tables), every registered one with its options")

    def __post_init__(self) -> None:
        if self.seed < 0:  # NumPy would take it modulo 2^32, silently another seed
            raise ValueError(f"seed = {self.seed!r} must be >= 0")
        if not 0 <= self.threads <= MAX_THREADS:
            raise ValueError(f"threads = {self.threads!r} must be 0 (torch's default) to {MAX_THREADS}")


COMPONENTS: dict[str, tuple[ComponentRegistry[Any], str]] = {
    "benchmark": (BENCHMARKS, "split_mnist"),
    "model": (MODELS, "mlp"),
    "method": (METHODS, "finetune"),
}
_PLAIN = {"training": TrainingConfig, "evaluation": EvaluationConfig, "checkpoint": CheckpointConfig, "reference": Reference}
_TOP = {"name": str, "description": str, "seed": int, "device": None, "threads": int, "deterministic": bool}


def _validate(raw: dict[str, Any]) -> RunConfig:
    """Dict → RunConfig; raises SchemaError with the offending key path."""
    # The options dataclasses live beside their implementations, so filling the registries imports
    # the component modules (and torch, ~1.5 s once); importing this module stays torch-free.
    from engine.catalog import load_all

    load_all()
    known = list(_TOP) + list(COMPONENTS) + list(_PLAIN) + ["analyses"]
    top: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in known:
            build(RunConfig, {key: value})  # raises "unknown key" with suggestions
        if key in _TOP:
            top[key] = value
    cfg: RunConfig = build(RunConfig, top)
    updates: dict[str, Any] = {}
    for key, (registry, default) in COMPONENTS.items():
        if not isinstance(raw.get(key, {}), dict):
            raise SchemaError(key, f"{key} should be a table")
        table = dict(raw.get(key, {}))
        name = table.pop("name", default)
        if not isinstance(name, str):
            raise SchemaError(f"{key}.name", f"{key}.name should be a string")
        try:
            cls = registry.get(name).options
        except ConfigError as e:
            raise SchemaError(f"{key}.name", str(e)) from None
        updates[key] = Component(name, build(cls, table, key))
    for old, new in _MOVED.items():
        section, _, key = old.partition(".")
        if isinstance(raw.get(section), dict) and key in raw[section]:
            raise SchemaError(old, f"{old} moved to {new} (the forgetting curves are an analysis now)")
    for key, cls in _PLAIN.items():
        updates[key] = build(cls, raw.get(key, {}), key)
    inference = updates["evaluation"].task_inference
    if inference != "given" and not getattr(METHODS.get(updates["method"].name).impl, "infers_task", False):
        raise SchemaError("evaluation.task_inference", f"evaluation.task_inference = {inference!r}: method "
                          f"{updates['method'].name!r} cannot infer the task; use 'given' or a method that can (supsup)")
    updates["analyses"] = _analyses(raw.get("analyses", {}))
    return replace(cfg, **updates)


_MOVED = {"evaluation.curve_every": "analyses.curves.every", "evaluation.curve_samples": "analyses.curves.samples"}


def _analyses(raw: Any) -> tuple[Component, ...]:
    """`[analyses.<name>]` tables → one Component per registered analysis (enabled or not), by name.

    Importing the analyses to validate their options loads torch (their options live beside them).
    """
    from engine.catalog import load_all
    from engine.registry import ANALYSES

    load_all()
    if not isinstance(raw, dict):
        raise SchemaError("analyses", "analyses should be a table of tables, e.g. [analyses.curves]")
    for name, table in raw.items():
        if name not in ANALYSES:
            raise SchemaError(f"analyses.{name}", f"unknown analysis {name!r}.{suggest(name, ANALYSES.names())} "
                                                  f"Known: {', '.join(ANALYSES.names())}.")
        if not isinstance(table, dict):
            raise SchemaError(f"analyses.{name}", f"analyses.{name} should be a table, e.g. [analyses.{name}]")
    return tuple(Component(e.name, build(e.options, raw.get(e.name, {}), f"analyses.{e.name}"))
                 for e in ANALYSES.entries())


def config_to_dict(cfg: RunConfig) -> dict[str, Any]:
    """The resolved config as plain data: component tables flattened to {name, **options}."""
    out: dict[str, Any] = {}
    for key in _TOP:
        out[key] = getattr(cfg, key)
    for key in COMPONENTS:
        comp: Component = getattr(cfg, key)
        out[key] = {"name": comp.name, **to_dict(comp.options)}
    for key in _PLAIN:
        out[key] = to_dict(getattr(cfg, key))
    out["reference"] = {k: v for k, v in out["reference"].items() if v is not None}
    out["analyses"] = {c.name: to_dict(c.options) for c in cfg.analyses}
    return out


def config_from_dict(raw: dict[str, Any], where: str = "stored config") -> RunConfig:
    """Validate plain data (a preset table or a stored config) into a RunConfig."""
    try:
        return _validate(raw)
    except SchemaError as e:
        raise ConfigError(f"{where}: {e.message}") from None


def parse_override(text: str) -> tuple[list[str], Any]:
    """'method.lambda=1e7' → (['method', 'lambda'], 1e7). Values are TOML; bare words are strings."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set training.lr=0.001")
    key, _, value = text.partition("=")
    key, value = key.strip(), value.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r}: empty key; write e.g. --set training.lr=0.001")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value  # a bare word such as cpu or ewc
    except RecursionError:  # tomllib recurses once per nesting level
        raise ConfigError(f"--set {key}: the value is nested too deeply") from None
    return key.split("."), parsed


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> tuple[dict[str, Any], set[str]]:
    """A deep copy of `raw` with every `--set` applied; also returns the overridden key paths."""
    out = copy.deepcopy(raw)
    paths: set[str] = set()
    for text in overrides:
        keys, value = parse_override(text)
        node = out
        for k in keys[:-1]:
            nxt = node.setdefault(k, {})
            if not isinstance(nxt, dict):
                raise ConfigError(f"--set {text!r}: {k!r} is a value, not a table")
            node = nxt
        node[keys[-1]] = value
        paths.add(".".join(keys))
    return out, paths


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; syntax errors become one-line ConfigErrors naming the file."""
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_TOML_BYTES + 1)
    except OSError as e:  # missing, a directory, no permission
        raise ConfigError(f"cannot read {path}: {e.strerror}") from None
    if len(data) > MAX_TOML_BYTES:
        raise ConfigError(f"{path}: over {MAX_TOML_BYTES // 2**20} MiB, not a preset; presets are short TOML files")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a UTF-8 text file (byte {e.start}); presets are TOML text") from None
    return toml_table(text, str(path))


MAX_TOML_BYTES = 1 << 20
"""Largest preset file read (1 MiB; shipped presets are under 2 KiB): a binary file given by mistake
is refused before it is parsed."""


def toml_table(text: str, where: str) -> dict[str, Any]:
    """Parse TOML text; every parse failure becomes one ConfigError naming `where`."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where}: invalid TOML: {e}") from None
    except RecursionError:  # tomllib recurses once per nesting level of arrays and inline tables
        raise ConfigError(f"{where}: invalid TOML: arrays or tables nested too deeply") from None


def load_config(
    raw: dict[str, Any], source: str, overrides: list[str] | None = None, seed: int | None = None,
    device: str | None = None,
) -> RunConfig:
    """Validate a preset's table plus overrides. Errors name the file or the --set that caused them."""
    merged, paths = apply_overrides(raw, overrides or [])
    if seed is not None:
        merged["seed"] = seed
    if device is not None:
        merged["device"] = device
    try:
        return _validate(merged)
    except SchemaError as e:
        # An error belongs to an override when its key path and the override's overlap.
        from_set = any(e.path == p or e.path.startswith((p + ".", p + "[")) or p.startswith(e.path + ".")
                       for p in paths)
        if from_set:
            raise ConfigError(f"--set: {e.message}") from None
        # A preset option that no longer fits because an override swapped its component (model.name=lstm
        # makes the preset's model.hidden list wrong): the override caused it, so name the override.
        for text in overrides or []:
            keys = text.split("=", 1)[0].strip().split(".")
            if keys[-1] == "name" and len(keys) > 1 and e.path.startswith(".".join(keys[:-1]) + "."):
                raise ConfigError(f"--set {text}: {e.message} in {source} (an option of the preset that does not "
                                  f"fit the new {keys[-2]}; override it too)") from None
        raise ConfigError(f"{source}: {e.message}") from None


def config_json(cfg: RunConfig) -> str:
    return json.dumps(config_to_dict(cfg), indent=1, sort_keys=False)
