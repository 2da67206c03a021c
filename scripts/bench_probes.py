"""Time the linear probes (engine/analyses/probes.py) at each phase end, on real data.

    python scripts/bench_probes.py split-mnist/finetune-class --data-dir /work/shared/data \
        [--set model.hidden=[120,84]] [--run RUN_DIR] [--layers h2]

Builds the preset's trainer (probes on), optionally loads the weights of a stored run's last
checkpoint (else the freshly initialised network), and calls the probes' phase-end hook for every
phase as if that phase had just ended, printing the CPU time (process time: this machine is shared,
wall clock is noisy), the wall time and the probe rows. Nothing is trained or written.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
import torch

from engine import events as ev
from engine.analyses.base import read_only
from engine.api import build_trainer
from engine.checkpoint import load_checkpoint
from engine.presets import load_preset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("preset")
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--set", action="append", default=[], dest="overrides")
    ap.add_argument("--run", type=Path, help="a run directory whose last checkpoint's weights to probe")
    ap.add_argument("--layers", default="", help="comma-separated layers (default: all)")
    args = ap.parse_args()
    layers = [s for s in args.layers.split(",") if s]
    over = [*args.overrides, "threads=1", "analyses.probes.enabled=true", f"analyses.probes.layers={layers!r}"]
    cfg = load_preset(args.preset, over)
    torch.set_num_threads(1)
    trainer, _ = build_trainer(cfg, Path(args.data_dir), ev.Recorder())
    if args.run is not None:
        trainer.model.load_state_dict(load_checkpoint(args.run)["model"])
    (probes,) = [o for o in trainer.observers.items if o.name == "probes"]
    total = 0.0
    for phase in range(len(trainer.plan)):
        c0, w0 = time.process_time(), time.perf_counter()
        with read_only(trainer.model):
            rows = probes.on_phase_end(0, phase)
        cpu, wall = time.process_time() - c0, time.perf_counter() - w0
        total += cpu
        overall = {k: np.round(np.asarray(v), 2).tolist() for k, v in rows.items() if not k.endswith("_class")}
        print(f"phase {phase}: cpu {cpu:.2f} s, wall {wall:.2f} s, {overall}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"total cpu {total:.2f} s over {len(trainer.plan)} phase ends; peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
