"""Per-channel normalisation and batched random crop + horizontal flip on tensors.

The paper does not state its data augmentation or normalisation; both follow FORCE's code
(naver/force ``experiments/datasets.py``): ``RandomCrop(size, padding=4)`` then
``RandomHorizontalFlip()`` on the training split of CIFAR and Tiny ImageNet, then
``Normalize(mean, std)`` with the constants below. FORCE pads the *raw* image with zeros and
normalises afterwards; the harness normalises once at load time, so it pads with the value a
zero pixel takes after normalisation (``-mean / std`` per channel) and the result is the same.

The augmentation works on a whole batch at once (two gathers, no loop over images) and draws
every random number from the generator it is given, so a seeded generator gives the same
augmented batches on every run.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Normalization:
    """Per-channel mean and standard deviation of pixel values in [0, 1]."""

    mean: tuple[float, ...]
    std: tuple[float, ...]

    def _view(self, values: tuple[float, ...], like: torch.Tensor) -> torch.Tensor:
        return torch.tensor(values, dtype=like.dtype, device=like.device).view(1, -1, 1, 1)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` uint8 images -> normalised float32 (in place after one copy)."""
        x = images.to(torch.float32).div_(255.0)
        return x.sub_(self._view(self.mean, x)).div_(self._view(self.std, x))

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """Back to pixel values in [0, 255] (for tests and inspection)."""
        return (x * self._view(self.std, x) + self._view(self.mean, x)) * 255.0

    @property
    def zero_fill(self) -> tuple[float, ...]:
        """The normalised value of a black (zero) pixel, per channel: FORCE's padding value."""
        return tuple(-m / s for m, s in zip(self.mean, self.std, strict=True))


# FORCE's constants (experiments/datasets.py), kept digit for digit.
CIFAR10_NORM = Normalization(mean=(0.4914, 0.4822, 0.4465), std=(0.2023, 0.1994, 0.2010))
CIFAR100_NORM = Normalization(mean=(0.5071, 0.4867, 0.4408), std=(0.2675, 0.2565, 0.2761))
TINY_IMAGENET_NORM = Normalization(
    mean=(0.48024578664982126, 0.44807218089384643, 0.3975477478649648),
    std=(0.2769864069088257, 0.26906448510256, 0.282081906210584),
)
# FORCE has no Fashion-MNIST; these are the mean and std of its 60,000 training images.
FASHION_MNIST_NORM = Normalization(mean=(0.2860,), std=(0.3530,))


@dataclass(frozen=True)
class RandomCropFlip:
    """Random crop of the original size from the padded image, then a flip with p = 0.5.

    Crop offsets are uniform over ``[0, 2 * padding]`` in each direction, as torchvision's
    ``RandomCrop(size, padding)``; ``fill`` is the per-channel padding value (one value is
    broadcast to every channel).
    """

    padding: int = 4
    fill: tuple[float, ...] = (0.0,)
    flip: bool = True

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Augment a batch ``(B, C, H, W)``; every draw comes from ``generator``."""
        b, c, h, w = x.shape
        p = self.padding
        fill = torch.tensor(self.fill, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        padded = fill.expand(b, c, h + 2 * p, w + 2 * p).clone()
        padded[:, :, p : p + h, p : p + w] = x
        dy = torch.randint(0, 2 * p + 1, (b, 1), generator=generator)
        dx = torch.randint(0, 2 * p + 1, (b, 1), generator=generator)
        flipped = torch.rand(b, 1, generator=generator) < 0.5
        cols = torch.arange(w)
        if self.flip:
            cols = torch.where(flipped, w - 1 - cols, cols)  # (B, W): flip inside the crop
        rows = (dy + torch.arange(h)).to(x.device)  # (B, H)
        cols = (dx + cols).to(x.device)  # (B, W)
        # Two gathers on contiguous memory: rows of every channel, then columns.
        out = padded.gather(2, rows.view(b, 1, h, 1).expand(b, c, h, w + 2 * p))
        return out.gather(3, cols.view(b, 1, 1, w).expand(b, c, h, w))


def crop_flip(normalization: Normalization, padding: int = 4) -> RandomCropFlip:
    """FORCE's training augmentation for data normalised with ``normalization``."""
    return RandomCropFlip(padding=padding, fill=normalization.zero_fill)
