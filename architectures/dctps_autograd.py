"""The autograd functions of the DCTpS layers: ``alpha * D + S`` composed with the gradients
only ``alpha`` and the k support values need (the offset ``D`` never gets one)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable


def _compose(alpha: Tensor, values: Tensor, offset: Tensor, indices: Tensor) -> Tensor:
    """``alpha * offset`` with ``values`` added at the flat ``indices`` (a new tensor)."""
    weight = alpha * offset
    weight.view(-1).index_add_(0, indices, values)
    return weight


def _offset_grads(
    ctx: Any, grad_weight: Tensor, offset: Tensor, indices: Tensor
) -> tuple[Tensor | None, Tensor | None]:
    """``(dalpha, dvalues) = (<dW, D>, dW[indices])`` from a weight gradient, no temporaries."""
    flat = grad_weight.reshape(-1)
    grad_alpha = torch.dot(flat, offset.reshape(-1)) if ctx.needs_input_grad[1] else None
    grad_values = flat.index_select(0, indices) if ctx.needs_input_grad[2] else None
    return grad_alpha, grad_values


class ComposeWeight(torch.autograd.Function):
    """``W = alpha * D + S`` with S given by its k values, in one tensor of D's shape.

    Backward needs no temporary of the layer's size: ``dalpha = <dW, D>`` (one dot product) and
    ``dvalues = dW[indices]``; autograd's own ``alpha * D`` would allocate ``dW * D`` first.
    """

    @staticmethod
    def forward(ctx: Any, offset: Tensor, alpha: Tensor, values: Tensor, indices: Tensor) -> Tensor:
        ctx.save_for_backward(offset, indices)
        return _compose(alpha, values, offset, indices)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        offset, indices = ctx.saved_tensors
        return None, *_offset_grads(ctx, grad, offset, indices), None


class DenseConv2dFunction(torch.autograd.Function):
    """``conv2d(x, alpha * D + S)`` (impl ``"dense"``) whose backward never holds W and dW at once.

    W is composed in forward and again in backward (one pass over the layer) instead of being
    saved: ``dx`` is computed with it, it is freed, then ``dW`` gives ``dalpha = <dW, D>`` and
    ``dvalues = dW[indices]``. Peak memory is D plus one layer-sized buffer, as for a plain conv's
    weight plus its gradient, instead of D + W + dW.
    """

    @staticmethod
    def forward(
        ctx: Any,
        x: Tensor,
        alpha: Tensor,
        values: Tensor,
        bias: Tensor | None,
        offset: Tensor,
        indices: Tensor,
        conv_args: tuple[tuple[int, int], tuple[int, int], tuple[int, int], int],
    ) -> Tensor:
        ctx.save_for_backward(x, alpha, values, offset, indices)
        ctx.conv_args = conv_args
        return F.conv2d(x, _compose(alpha, values, offset, indices), bias, *conv_args)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, alpha, values, offset, indices = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv_args

        def backward_of(weight: Tensor, mask: tuple[bool, bool, bool]) -> tuple[Tensor, ...]:
            # the real x and a real weight-shaped tensor: torch.nn.grad's expanded placeholders
            # would be materialised (a copy of the input or of the weight)
            return torch.ops.aten.convolution_backward(
                grad, x, weight, None, stride, padding, dilation, False, [0], groups, mask
            )

        grad_x = grad_alpha = grad_values = grad_bias = None
        if ctx.needs_input_grad[0]:
            weight = _compose(alpha, values, offset, indices)
            grad_x = backward_of(weight, (True, False, False))[0]
            del weight
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            grad_weight = backward_of(offset, (False, True, False))[1]
            grad_alpha, grad_values = _offset_grads(ctx, grad_weight, offset, indices)
        if ctx.needs_input_grad[3]:
            grad_bias = grad.sum((0, 2, 3))
        return grad_x, grad_alpha, grad_values, grad_bias, None, None, None
