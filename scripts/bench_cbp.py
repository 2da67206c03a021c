"""Cost of continual backprop per training step on the ResNet-18 of the loss-of-plasticity presets.

Times, on synthetic CIFAR-sized inputs, a plain training step (forward with the logits sliced to
`--classes`, cross-entropy, backward, SGD step) and the same step followed by CBP's `after_step`
(ages, activity, counters, and replacements with `--rate`), then the plain step again with CBP's
hooks (the capture of the 17 layers' mean |feature| in the forward) removed. CPU time (time.process_time) by default, so a crowded machine's other processes do not
count; on CUDA it synchronises and reports wall time.

    python scripts/bench_cbp.py --width 64 --batch 90 --steps 5 --device cpu
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from engine.benchmarks.base import Benchmark, InputSpec
from engine.catalog import load_all
from engine.config import TrainingConfig
from engine.methods.base import MethodContext
from engine.methods.cbp import Cbp, CbpOptions
from engine.models.resnet18 import ResNet18, Resnet18Options


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--batch", type=int, default=90)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--classes", type=int, default=5)
    ap.add_argument("--rate", type=float, default=1e-5)
    ap.add_argument("--maturity", type=int, default=0, help="0: every unit is mature at once (replacements happen)")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    load_all()
    dev = torch.device(args.device)
    torch.manual_seed(0)
    model = ResNet18(Resnet18Options(args.width), InputSpec((3, 32, 32), 100)).to(dev)
    bench = Benchmark([], torch.arange(args.classes, device=dev).view(1, -1), InputSpec((3, 32, 32), 100), "synthetic", {})
    ctx = MethodContext(model=model, benchmark=bench, device=dev, training=TrainingConfig(), seed=0)
    cbp = Cbp(CbpOptions(replacement_rate=args.rate, maturity=args.maturity), ctx)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    x = torch.randn(args.batch, 3, 32, 32, device=dev)
    y = torch.randint(args.classes, (args.batch,), device=dev)
    clock = time.perf_counter if dev.type == "cuda" else time.process_time

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize()

    def step(with_cbp: bool) -> tuple[float, float]:
        sync()
        t0 = clock()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(cbp.head_logits(x, None, 0), y)
        loss.backward()
        opt.step()
        sync()
        t1 = clock()
        if with_cbp:
            cbp.after_step(0, [0])
        sync()
        return t1 - t0, clock() - t1

    step(True)  # warm-up
    train, extra = [], []
    for _ in range(args.steps):
        a, b = step(True)
        train.append(a)
        extra.append(b)
    t, c = sum(train) / len(train), sum(extra) / len(extra)
    for h in cbp._hooks:  # the same steps without CBP's feature capture
        h.remove()
    plain = sum(step(False)[0] for _ in range(args.steps)) / args.steps
    print(f"width {args.width} batch {args.batch} on {dev}: training step {t * 1e3:.1f} ms, "
          f"CBP after_step {c * 1e3:.2f} ms ({100 * c / t:.2f} % of the step); replaced so far "
          f"{sum(cbp.replaced_in_phase)} units; without CBP's hooks the step is {plain * 1e3:.1f} ms "
          f"({'wall' if dev.type == 'cuda' else 'CPU'} time, mean of {args.steps})")


if __name__ == "__main__":
    main()
