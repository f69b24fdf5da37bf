"""paibench's DCTpS networks against the authors' own DCTpS code (github:IlanPrice/DCTpS).

Not a speed benchmark: a side-by-side check of the facts docs/paper-mini.md states about
DCTpS. It builds a study network (LeNet-5 or the quarter-width ResNet18) with DCTpS on Fashion-MNIST
through paibench's own pipeline (allocation included), then the same network from the
authors' code (``code/modules.py`` layers; their ``DCTplusSparseResNet`` with ``in_planes=16``)
with paibench's support copied in and the authors' ``apply_prune_mask`` gradient hooks, and
prints:

- the largest difference between the two offsets ``D`` of every layer and between the outputs;
- that the first row of every offset is constant and meets non-negative (post-ReLU) features,
  and what that does to the initial loss and the predicted class;
- the training losses of both under Adam with weight decay (the study's preset) on the same
  batches, and their largest relative difference.

    git clone https://github.com/IlanPrice/DCTpS /tmp/DCTpS   # any checkout of the authors' code
    python benchmarks/authors_dctps.py --authors /tmp/DCTpS --density 0.005 --steps 300

Their ``LeNet`` class accepts only CIFAR and Tiny ImageNet, so LeNet-5 is assembled from their
layers with paibench's shapes (a 28x28 input, zero-padded by 2 in the first conv); their ResNet's
3-channel stem is replaced by their own ``DCTplusConv2d`` with one input channel.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import importlib.util
import io
import sys
from pathlib import Path
from types import ModuleType

import torch
import torch.nn.functional as F
from torch import nn

from architectures.dctps import dctps_layers
from bench.config import RunConfig
from bench.pipeline import prepare
from bench.presets import PRESETS
from bench.recorder import MemoryRecorder


def load(path: Path, name: str) -> ModuleType:
    """Import one file of the authors' code by path (their package is named ``code``)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def authors_lenet(modules: ModuleType, num_classes: int) -> nn.Module:
    """The authors' DCTpS LeNet layers (``DCTplusSparseLeNet``) on a 1x28x28 input."""
    conv, linear = modules.DCTplusConv2d, modules.DCTplusLinear
    with contextlib.redirect_stdout(io.StringIO()):  # their DCTplusLinear prints a line
        convs = nn.Sequential(
            conv(1, 6, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.AvgPool2d(2, 2),
            conv(6, 16, kernel_size=5),
            nn.ReLU(),
            nn.AvgPool2d(2, 2),
            conv(16, 120, kernel_size=5),
            nn.ReLU(),
        )
        fcs = nn.Sequential(
            linear(120, 82, bias=False), nn.ReLU(), linear(82, num_classes, bias=False)
        )
    return nn.Sequential(convs, nn.Flatten(1), fcs)


def authors_resnet(authors: Path, modules: ModuleType, num_classes: int) -> nn.Module:
    """The authors' DCTpS ResNet18 at width 16 with a one-channel stem."""
    package = ModuleType("code")  # their files import ``code.modules``, shadowing the stdlib
    package.__path__ = [str(authors / "code")]
    saved = {name: sys.modules.get(name) for name in ("code", "code.modules")}
    sys.modules["code"], sys.modules["code.modules"] = package, modules
    try:
        models = load(authors / "code" / "models.py", "authors_models")
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    with contextlib.redirect_stdout(io.StringIO()):
        model = models.resnet18(offset="dct", in_planes=16, num_classes=num_classes)
        model.conv1 = modules.DCTplusConv2d(1, 16, kernel_size=3, stride=1, padding=1)
    return model


def authors_parts(model: nn.Module) -> list[nn.Module]:
    """The authors' DCTplus layers of ``model`` in forward order."""
    return [m for m in model.modules() if hasattr(m, "dct") and hasattr(m, "scaling")]


def copy_support(ours: nn.Module, theirs: nn.Module) -> tuple[float, list[torch.Tensor]]:
    """Give the authors' network our ``alpha``, sparse weights and biases; return the largest
    offset difference and the masks (for the authors' own gradient hooks)."""
    mine = list(dctps_layers(ours).values())
    parts = authors_parts(theirs)
    if len(mine) != len(parts):
        raise SystemExit(f"{len(mine)} DCTpS layers here, {len(parts)} in the authors' network")
    worst = 0.0
    masks = []
    with torch.no_grad():
        for layer, part in zip(mine, parts):
            sparse = part.conv if hasattr(part, "conv") else part.linear
            if tuple(sparse.weight.shape) != tuple(layer.weight_shape):
                raise SystemExit(
                    f"layer order differs: {layer.weight_shape} against "
                    f"{tuple(sparse.weight.shape)}"
                )
            if sparse.bias is not None and layer.bias is not None:
                sparse.bias.copy_(layer.bias)
            worst = max(worst, float((layer.offset() - part.dct.weight).abs().max()))
            sparse.weight.copy_(layer.sparse_weight())
            part.scaling.copy_(layer.alpha)
            mask = torch.zeros(layer.total)
            mask[layer.indices.long()] = 1.0
            masks.append(mask.view(layer.weight_shape))
    return worst, masks


def first_rows(theirs: nn.Module) -> list[tuple[tuple[int, ...], float]]:
    """Each authors' offset's shape and the spread (max - min) of its first row."""
    rows = []
    for part in authors_parts(theirs):
        weight = part.dct.weight.detach()
        row = weight.reshape(weight.shape[0], -1)[0]
        rows.append((tuple(weight.shape), float(row.max() - row.min())))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--authors", type=Path, required=True, help="checkout of IlanPrice/DCTpS")
    parser.add_argument(
        "--arch", choices=("lenet5", "resnet18_w16"), default="lenet5", help="network (lenet5)"
    )
    parser.add_argument("--density", type=float, default=0.005, help="DCTpS density (0.005)")
    parser.add_argument("--seed", type=int, default=0, help="run seed (0)")
    parser.add_argument("--steps", type=int, default=300, help="Adam steps compared (300)")
    parser.add_argument(
        "--train-subset", type=int, default=10_000, help="training images (10000, as lenet5-long)"
    )
    parser.add_argument(
        "--images", type=int, default=2_000, help="images the outputs and initial loss use (2000)"
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    code = args.authors / "code"
    modules = load(code / "modules.py", "authors_modules")
    mask_networks = load(code / "mask_networks.py", "authors_mask_networks")

    config = RunConfig(
        arch=args.arch,
        dataset="fashion-mnist",
        method="dctps",
        density=args.density,
        seed=args.seed,
        train_subset=args.train_subset,
    )
    prepared = prepare(config, MemoryRecorder())
    ours, data = prepared.model, prepared.datamodule
    if args.arch == "lenet5":
        theirs = authors_lenet(modules, data.num_classes)
    else:
        theirs = authors_resnet(args.authors, modules, data.num_classes)
    offset_diff, masks = copy_support(ours, theirs)
    print(f"DCTpS {args.arch}, fashion-mnist, density {args.density}, seed {args.seed}")
    print(
        f"  offsets D: largest |ours - authors'| over its {len(first_rows(theirs))} layers "
        f"= {offset_diff:.3g}"
    )
    for shape, spread in first_rows(theirs):
        print(f"  authors' offset {shape}: first row max - min = {spread:.3g}")

    # training mode, as the first step sees the network (BatchNorm on batch statistics), on
    # copies, so the running statistics the training below starts from stay untouched
    with torch.no_grad():
        x, y = data.x_train[: args.images], data.y_train[: args.images]
        out_ours, out_theirs = copy.deepcopy(ours)(x), copy.deepcopy(theirs)(x)
    scale = float(out_theirs.abs().max())
    print(
        f"  outputs on the {len(x)} training images: largest difference "
        f"{float((out_ours - out_theirs).abs().max()):.3g} (largest output {scale:.3g})"
    )
    loss = F.cross_entropy(out_theirs, y)
    share = float((out_theirs.argmax(1) == 0).float().mean())
    print(
        f"  initial loss {float(loss):.2f} (ln 10 = 2.30); class 0 predicted for "
        f"{100 * share:.1f}% of the images"
    )

    preset = PRESETS["adam"]
    optimizers = [
        torch.optim.Adam(
            [p for p in net.parameters() if p.requires_grad],
            lr=preset.lr,
            weight_decay=preset.weight_decay,
        )
        for net in (ours, theirs)
    ]
    mask_networks.apply_prune_mask(theirs, masks)
    worst, step, last = 0.0, 0, (float("nan"), float("nan"))
    while step < args.steps:
        for xb, yb in data.train_dataloader():
            losses = []
            for net, optimizer in zip((ours, theirs), optimizers):
                optimizer.zero_grad()
                batch_loss = F.cross_entropy(net(xb), yb)
                batch_loss.backward()
                optimizer.step()
                losses.append(batch_loss.item())
            worst = max(worst, abs(losses[0] - losses[1]) / max(abs(losses[1]), 1e-12))
            step, last = step + 1, (losses[0], losses[1])
            if step == args.steps:
                break
    print(
        f"  {args.steps} Adam steps (lr {preset.lr}, weight decay {preset.weight_decay}, "
        f"batch {data.batch_size}): last loss ours {last[0]:.4f}, authors' {last[1]:.4f}; "
        f"largest relative difference per step {worst:.3g}"
    )
    off_support = 0
    for layer, part in zip(dctps_layers(ours).values(), authors_parts(theirs)):
        weight = (part.conv if hasattr(part, "conv") else part.linear).weight.detach()
        outside = torch.ones(layer.total, dtype=torch.bool)
        outside[layer.indices.long()] = False
        off_support += int((weight.reshape(-1)[outside] != 0).sum())
    print(f"  authors' sparse weights off the support and nonzero after training: {off_support}")


if __name__ == "__main__":
    sys.exit(main())
