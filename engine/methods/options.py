"""Hyperparameter dataclasses of every CL method, registered by method name (torch-free).

Each method's implementation (`engine/methods/<name>.py`) takes its dataclass from here; keeping
them torch-free lets the CLI and TUI validate presets and overrides without loading torch.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.registry import Registry

METHOD_OPTIONS: Registry[type] = Registry("method")


@METHOD_OPTIONS.register("finetune")
@dataclass(frozen=True)
class FinetuneOptions:
    """Plain sequential training; no options."""


@METHOD_OPTIONS.register("multitask")
@dataclass(frozen=True)
class MultitaskOptions:
    """Joint training on all tasks for steps_per_task × num_tasks steps; no options."""


@METHOD_OPTIONS.register("scratch")
@dataclass(frozen=True)
class ScratchOptions:
    """A freshly initialised network for every task; no options."""


from engine.schema import opt  # noqa: E402  (appended with HnetOptions; the lead may hoist it)


@METHOD_OPTIONS.register("hnet")
@dataclass(frozen=True)
class HnetOptions:
    """Chunked MLP hypernetwork generating all main-network weights; defaults are hypnettorch's hypercl ones (spec §8)."""

    hidden: list[int] = opt([100, 100], "hypernetwork MLP hidden widths (ReLU)")
    chunk_size: int = opt(750, "weights generated per MLP pass; K = ceil(main params / chunk_size) chunks")
    temb_size: int = opt(8, "task embedding size")
    cemb_size: int = opt(8, "chunk embedding size")
    temb_std: float = opt(1.0, "task embeddings are initialised N(0, temb_std²)")
    cemb_std: float = opt(1.0, "chunk embeddings are initialised N(0, cemb_std²)")
    beta: float = opt(0.01, "output-regulariser strength β: β/|S|·Σ_j ||h(e_j) − h*(e_j)||² over earlier tasks S")
    reg_batch_size: int = opt(-1, "earlier tasks regularised per step, drawn at random; -1 = all (the reference)")

    def __post_init__(self) -> None:
        if any(h < 1 for h in self.hidden) or min(self.chunk_size, self.temb_size, self.cemb_size) < 1:
            raise ValueError("hidden widths, chunk_size, temb_size and cemb_size must be positive")
        if self.temb_std < 0 or self.cemb_std < 0 or self.beta < 0:
            raise ValueError("temb_std, cemb_std and beta must be >= 0")
        if self.reg_batch_size == 0 or self.reg_batch_size < -1:
            raise ValueError("reg_batch_size must be -1 (all earlier tasks) or positive")


from typing import Literal  # noqa: E402  (appended with the EWC/SI/masking/coresets options)


@METHOD_OPTIONS.register("ewc")
@dataclass(frozen=True)
class EwcOptions:
    """Online EWC (spec §4.2): penalty ewc_lambda·½·Σ F(θ−θ*)², F = empirical Fisher accumulated over tasks."""

    ewc_lambda: float = opt(1.0, "penalty strength λ in λ·½·Σ F·(θ−θ*)² (the reference's --ewc_lambda; its runs use 1e4 … 1e10)")
    gamma: float = opt(1.0, "online decay γ: F ← F_new + γ·F_prev, applied once per task (reference default 1.0)")
    n_fisher: int = opt(-1, "training samples of each task used for the Fisher, batch size 1, from a fresh shuffle; -1 = all")
    fisher_impl: Literal["auto", "vmap", "loop"] = opt("auto", "per-sample gradients: 'vmap' (torch.func), 'loop' (batch-1 backward passes, the reference), 'auto' = vmap on CUDA, loop on CPU (loop if vmap fails)")
    fisher_chunk: int = opt(64, "samples per vmap call (memory ≈ chunk × model parameters × 4 bytes)")

    def __post_init__(self) -> None:
        if self.ewc_lambda < 0 or self.gamma < 0:
            raise ValueError("ewc_lambda and gamma must be >= 0")
        if self.n_fisher == 0 or self.n_fisher < -1 or self.fisher_chunk < 1:
            raise ValueError("n_fisher must be -1 (all) or positive, fisher_chunk positive")


@METHOD_OPTIONS.register("si")
@dataclass(frozen=True)
class SiOptions:
    """Synaptic Intelligence (spec §4.3): penalty si_lambda·Σ Ω(θ−θ_prev)² (no ½), Ω from the path integral ω."""

    si_lambda: float = opt(1.0, "penalty strength c in c·Σ Ω·(θ−θ_prev)² (the reference's --si_lambda)")
    damping: float = opt(1e-3, "ξ in Ω += max(0, ω/((θ_end−θ_start)² + ξ)) (hard-coded 1e-3 in the reference)")
    task_loss_only: bool = opt(True, "ω from the task-loss gradient and the optimizer step it alone would make (predicted from a copy of the optimizer state; SGD: −lr·g); false = the real step and the full, clipped gradient")

    def __post_init__(self) -> None:
        if self.si_lambda < 0 or self.damping <= 0:
            raise ValueError("si_lambda must be >= 0 and damping > 0")


@METHOD_OPTIONS.register("masking")
@dataclass(frozen=True)
class MaskingOptions:
    """Fixed random binary unit masks per task (spec §4.4); all weights shared."""

    mask_fraction: float = opt(0.8, "fraction of each masked layer's units switched OFF per task, ⌊units·p⌋ (0.8 leaves 20% active)")

    def __post_init__(self) -> None:
        if not 0.0 <= self.mask_fraction < 1.0:
            raise ValueError("mask_fraction must be in [0, 1)")


@METHOD_OPTIONS.register("masking_si")
@dataclass(frozen=True)
class MaskingSiOptions(SiOptions, MaskingOptions):
    """Masking plus SI on all weights (spec §4.4): SI's options and mask_fraction."""

    def __post_init__(self) -> None:
        SiOptions.__post_init__(self)
        MaskingOptions.__post_init__(self)


@METHOD_OPTIONS.register("coresets")
@dataclass(frozen=True)
class CoresetsOptions:
    """Coreset replay with distillation to the network from the start of the task (spec §4.7)."""

    coreset_size: int = opt(500, "training samples kept per finished task (random; indices only)")
    replay_batch: int = opt(-1, "replayed samples per step, split over all old tasks; -1 = the training batch size")
    temperature: float = opt(2.0, "distillation temperature T; the loss is T²-scaled")
    distill_reg: float = opt(1.0, "λ_d: weight of the KD loss summed over old tasks. KD is read out at the model's normal step (len−1); the reference reads it at len−2 (an off-by-one we do not copy)")

    def __post_init__(self) -> None:
        if self.coreset_size < 1 or self.replay_batch == 0 or self.replay_batch < -1:
            raise ValueError("coreset_size must be positive, replay_batch -1 or positive")
        if self.temperature <= 0 or self.distill_reg < 0:
            raise ValueError("temperature must be > 0 and distill_reg >= 0")
