"""Which runs train together: ``--stack N|auto|off``, the stack key, and the ``auto`` rule.

Runs stack when they share everything but method, options, density and seed: network, data
set, preset, budget, precision, layout, place, and the learning rate their method trains at
(DCTpS's SGD rate differs, so it stacks with DCTpS only under SGD).

``auto`` stacks only where stacking was measured faster (``benchmarks/stacking.py``, recorded
in docs/performance.md): on a GPU every network, sized by memory; on the CPU only networks
without convolutions (the digits MLP gained 1.3-2.1x; LeNet-5 and the ResNets lost, since a
batched convolution on the CPU runs no faster than its parts).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from bench.config import RunConfig
from bench.errors import BenchError

# Identity fields a stack's runs may differ in; every other RunConfig field must match.
PER_MODEL_FIELDS = ("method", "options", "density", "seed", "spectrum")
# Without measurements of memory, ``auto`` stacks at most this many models at once.
AUTO_LIMIT = 32


@dataclass(frozen=True)
class StackPolicy:
    """``limit`` models per stack (1: never stack); ``auto``: only where it was measured faster."""

    limit: int
    auto: bool = False

    @property
    def enabled(self) -> bool:
        return self.limit > 1

    def __str__(self) -> str:
        return "auto" if self.auto else ("off" if self.limit == 1 else str(self.limit))


def parse_stack(text: str) -> StackPolicy:
    """``N`` (>= 1), ``auto`` or ``off``; anything else is a one-line error naming them."""
    value = text.strip().lower()
    if value == "auto":
        return StackPolicy(AUTO_LIMIT, auto=True)
    if value == "off":
        return StackPolicy(1)
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if limit < 1:
        raise BenchError(f"bad --stack {text!r} (valid: a number of models >= 1, auto, off)")
    return StackPolicy(limit)


def stack_key(config: RunConfig) -> str:
    """Runs with equal keys can train as one stack."""
    import methods
    from bench.resolve import training_plan

    method = methods.get(config.method, **config.options)
    if not method.stackable:
        return config.config_hash()  # a key of its own: it trains alone
    shared = {k: v for k, v in config.to_json().items() if k not in PER_MODEL_FIELDS}
    shared["lr"] = training_plan(config, method).lr
    return json.dumps(shared, sort_keys=True)


def model_bytes(config: RunConfig, batch_size: int) -> int:
    """What one more model in a stack costs in memory, estimated on the meta device (no
    allocation): four copies of its parameters (weight, gradient, two Adam moments) and every
    module's output for one batch, twice (kept for the backward pass, and its gradient)."""
    import torch

    import architectures
    from bench.data import dataset_spec

    spec = dataset_spec(config.dataset)
    model = architectures.build_meta(config.arch, spec.num_classes, input_shape=spec.input_shape)
    outputs = 0

    def count(_module, _inputs, output) -> None:
        nonlocal outputs
        if isinstance(output, torch.Tensor):
            outputs += output.numel()

    hooks = [m.register_forward_hook(count) for m in model.modules()]
    with torch.no_grad():
        model(torch.empty(batch_size, *spec.input_shape, device="meta"))
    for hook in hooks:
        hook.remove()
    params = sum(p.numel() for p in model.parameters())
    return 4 * (4 * params + 2 * outputs)


def free_bytes(on_gpu: bool, device_index: int | None = None) -> int:
    """Memory free for a stack now: the GPU's, or the machine's available RAM."""
    import os

    if on_gpu:
        import torch

        free, _total = torch.cuda.mem_get_info(device_index or 0)
        return int(free)
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def has_convolutions(config: RunConfig) -> bool:
    """Whether ``config``'s network has a convolution (on the meta device: no allocation)."""
    from torch import nn

    import architectures
    from bench.data import dataset_spec

    spec = dataset_spec(config.dataset)
    model = architectures.build_meta(config.arch, spec.num_classes, input_shape=spec.input_shape)
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def stack_size(
    config: RunConfig,
    policy: StackPolicy,
    on_gpu: bool,
    batch_size: int,
    device_index: int | None = None,
) -> int:
    """How many runs like ``config`` the policy stacks at once (1: train alone).

    Under ``auto``: 1 on the CPU for a network with convolutions (measured slower), else as
    many as half the free memory holds by :func:`model_bytes`, at most ``policy.limit``.
    """
    if not policy.enabled or config.channels_last:  # the stacked forward has no NHWC path
        return 1
    if not policy.auto:
        return policy.limit
    if not on_gpu and has_convolutions(config):
        return 1
    fits = free_bytes(on_gpu, device_index) // 2 // max(model_bytes(config, batch_size), 1)
    return max(1, min(policy.limit, int(fits)))


def describe(
    configs: list[RunConfig], policy: StackPolicy, device_index: int | None = None
) -> list[str]:
    """How ``policy`` groups ``configs``: one line per network, data set and budget."""
    import methods
    from bench.pipeline import run_device
    from bench.resolve import training_plan

    seen: dict[tuple, list[RunConfig]] = {}
    for config in configs:
        key = (config.arch, config.dataset, config.preset, config.epochs, config.train_subset)
        seen.setdefault(key, []).append(config)
    lines = []
    from storage.spec import budget_label

    for (arch, dataset, *_), group in seen.items():
        first = next((c for c in group if methods.get(c.method).stackable), group[0])
        on_gpu = run_device(first, device_index).type == "cuda"
        batch = training_plan(first, methods.get(first.method, **first.options)).batch_size
        size = stack_size(first, policy, on_gpu, batch, device_index)
        alone = sum(1 for c in group if not methods.get(c.method).stackable)
        where = f"{arch} on {dataset} ({budget_label(first.to_json())})"
        if size <= 1:
            why = (
                "" if not policy.auto or not policy.enabled else " (auto: convolutions on the CPU)"
            )
            lines.append(f"stacking {where}: off, one run at a time{why}")
        else:
            extra = f"; {alone} runs train alone (not stackable)" if alone else ""
            lines.append(
                f"stacking {where}: up to {size} runs per stack ({policy}){extra}"
            )
    return lines
