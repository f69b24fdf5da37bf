"""Top singular values of the input-output Jacobian at initialisation (the paper's Figure 4).

For a network ``f: R^D -> R^C`` (D = the flattened input, C = classes) and one example ``x``, the
Jacobian is ``J(x)_ij = d f_i(x) / d x_j``, a ``C x D`` matrix with at most ``min(C, D)`` non-zero
singular values. :func:`jacobian_spectrum` computes, on a fixed batch of ``B`` training examples
drawn from the run's seed (:func:`spectrum_batch`), every example's singular values (sorted,
largest first) and returns their mean over the batch, rank by rank: ``spectrum[r]`` is the mean
over the batch of the ``r``-th largest singular value of ``J(x)``.

The model is evaluated in ``eval()`` mode, so that BatchNorm uses its (initial) running
statistics and each example's output depends on that example alone; the masks (or DCTpS layers)
are already applied. ``J`` is built row by row with ``C`` backward passes of the whole batch
(``d sum_b f_i(x_b) / d x`` is row ``i`` of every example's Jacobian, because examples do not
interact in eval mode), which works for any differentiable layer and costs ``C`` backward passes.
A network in which every path from input to output is cut (a layer with an all-zero mask) has
``J = 0`` exactly, hence an all-zero spectrum: the collapse the paper links to untrainability.
"""

from __future__ import annotations

import torch
from torch import nn

SPECTRUM_EXAMPLES = 8  # examples in the fixed batch
SPECTRUM_TOP = 32  # at most this many singular values are kept (C for every data set up to 32)


def spectrum_batch(x_train: torch.Tensor, seed: int, size: int = SPECTRUM_EXAMPLES) -> torch.Tensor:
    """``size`` training examples chosen by a generator seeded with ``seed`` (no augmentation)."""
    generator = torch.Generator().manual_seed(seed)
    index = torch.randperm(len(x_train), generator=generator)[: min(size, len(x_train))]
    return x_train[index]


def jacobian_spectrum(model: nn.Module, x: torch.Tensor, top: int = SPECTRUM_TOP) -> torch.Tensor:
    """Mean over the batch ``x`` of each example's top singular values of ``d model(x) / d x``.

    Returns a float64 CPU tensor of length ``min(top, C, D)``, largest first.
    """
    was_training = model.training
    model.eval()
    try:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        x = x.detach().to(device).requires_grad_(True)
        with torch.enable_grad():
            out = model(x)
            classes = out.shape[1]
            rows = []
            for i in range(classes):
                (grad,) = torch.autograd.grad(
                    out[:, i].sum(), x, retain_graph=i < classes - 1, allow_unused=True
                )
                rows.append(torch.zeros_like(x) if grad is None else grad)
        jacobian = torch.stack(rows, dim=1).flatten(2).double()  # (B, C, D)
        values = torch.linalg.svdvals(jacobian)  # (B, min(C, D)), each row descending
    finally:
        model.train(was_training)
    return values.mean(dim=0)[:top].cpu()
