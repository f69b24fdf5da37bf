"""The CIFAR model zoo: Table 2 counts to the parameter, shapes, Fixup init, seeding, bad inputs;
the registry (decorator, origin, training overrides) and finding DCTpS layers."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator

import pytest
import torch
from torch import nn

import architectures
from architectures import (
    ParameterCount,
    UnknownArchitecture,
    build,
    build_meta,
    parameter_count,
    prunable_layers,
    registry,
    spec,
    summarize,
)
from architectures.dctps import to_dctps
from architectures.fixup_resnet import FixupResNet, fixup_std
from architectures.layers import GlobalAvgPool

# methods-reference.md s.9 / paper Table 2, 10 classes:
# (prunable weights, bias & BN, total, prunable layers, classifier in_features, classifier bias).
TABLE_2: dict[str, tuple[int, int, int, int, int, bool]] = {
    "resnet50": (23_467_712, 53_130, 23_520_842, 54, 2048, True),
    "vgg19": (20_024_000, 11_018, 20_035_018, 17, 512, True),
    "mobilenetv2": (2_261_824, 35_098, 2_296_922, 58, 1280, True),
    "fixup_resnet110": (1_719_856, 282, 1_720_138, 110, 64, True),
    "resnet18": (11_164_352, 9_610, 11_173_962, 21, 512, True),
    "lenet5": (61_510, 0, 61_510, 5, 82, False),
}
ZOO = tuple(TABLE_2)
CIFAR_MODELS = tuple(name for name in ZOO if name != "lenet5")

DIGITS, FASHION, CIFAR, TINY = (1, 8, 8), (1, 28, 28), (3, 32, 32), (3, 64, 64)
ACCEPTED = {name: (FASHION, CIFAR, TINY) for name in CIFAR_MODELS} | {"lenet5": (FASHION, CIFAR)}
# ResNet50 at 64x64 is left to the (meta-device) final-map test to keep the file cheap.
FORWARD_CASES = [
    (name, shape) for name in ZOO for shape in ACCEPTED[name] if (name, shape) != ("resnet50", TINY)
]


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Run this file's tiny forwards single-threaded: on shared, busy CPUs that is much faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _shapes(model: nn.Module) -> dict[str, torch.Size]:
    return {name: p.shape for name, p in model.named_parameters()}


@pytest.mark.parametrize("name", ZOO)
def test_table_2_counts_exactly(name: str) -> None:
    weights, other, total, layers, _, _ = TABLE_2[name]
    assert summarize(name) == ParameterCount(weights, other, total, layers)
    assert summarize(name, 10, (3, 32, 32)) == summarize(name)


@pytest.mark.parametrize("name", ZOO)
def test_only_the_classifier_depends_on_the_class_count(name: str) -> None:
    ten, hundred = build_meta(name, 10), build_meta(name, 100)
    last = prunable_layers(ten)[-1]
    _, _, _, _, in_features, has_bias = TABLE_2[name]
    assert isinstance(last.module, nn.Linear)
    assert last.module.in_features == in_features
    assert (last.module.bias is not None) == has_bias

    fc_name = last.module_name
    expected = {f"{fc_name}.weight"} | ({f"{fc_name}.bias"} if has_bias else set())
    small, large = _shapes(ten), _shapes(hundred)
    assert small.keys() == large.keys()
    assert {key for key in small if small[key] != large[key]} == expected
    count = summarize(name, 100)
    assert count.weights == TABLE_2[name][0] + 90 * in_features
    assert count.other == TABLE_2[name][1] + (90 if has_bias else 0)


@pytest.mark.parametrize("name", ZOO)
def test_accepted_dataset_shapes(name: str) -> None:
    accepted = tuple(s for s in (DIGITS, FASHION, CIFAR, TINY) if spec(name).accepts(s))
    assert accepted == ACCEPTED[name]


def _shape_id(shape: object) -> str | None:
    return "x".join(map(str, shape)) if isinstance(shape, tuple) else None


@pytest.mark.parametrize(("name", "shape"), FORWARD_CASES, ids=_shape_id)
def test_forward_gives_logits_and_only_the_stem_follows_the_input(
    name: str, shape: tuple[int, int, int]
) -> None:
    model = build(name, 10, input_shape=shape).eval()
    with torch.no_grad():
        logits = model(torch.randn(2, *shape, generator=torch.Generator().manual_seed(0)))
    assert logits.shape == (2, 10)
    assert torch.isfinite(logits).all()

    # The meta summary is the real model's count; only the stem's in_channels follow the input.
    assert parameter_count(model) == summarize(name, 10, shape)
    stem = prunable_layers(model)[0]
    assert stem.weight.shape[1] == shape[0]
    real, reference = _shapes(model), _shapes(build_meta(name, 10))
    assert real.keys() == reference.keys()
    assert {key for key in real if real[key] != reference[key]} <= {stem.name}


# Spatial size of the map the final pool averages: the stride-1 stems and MobileNetV2's
# stride-1 second stage give 4x4 at 32x32; VGG19's four max-pools give 2x2 (4x4 on 64x64).
FINAL_MAPS = {
    "resnet18": {28: 4, 32: 4, 64: 8},
    "resnet50": {28: 4, 32: 4, 64: 8},
    "vgg19": {28: 1, 32: 2, 64: 4},
    "mobilenetv2": {28: 4, 32: 4, 64: 8},
    "fixup_resnet110": {28: 7, 32: 8, 64: 16},
}


@pytest.mark.parametrize("name", CIFAR_MODELS)
def test_final_map_before_the_pool(name: str) -> None:
    seen: list[torch.Size] = []
    for shape in ACCEPTED[name]:
        model = build_meta(name, 10, input_shape=shape)
        pools = [m for m in model.modules() if isinstance(m, nn.AvgPool2d | GlobalAvgPool)]
        pools[-1].register_forward_pre_hook(lambda _module, args: seen.append(args[0].shape))
        assert model(torch.empty(2, *shape, device="meta")).shape == (2, 10)
        side = FINAL_MAPS[name][shape[1]]
        assert seen[-1][-2:] == (side, side), (name, shape)


@pytest.mark.parametrize(
    ("name", "expected"),
    [("resnet18", 3), ("resnet50", 4), ("mobilenetv2", 4), ("vgg19", 0), ("fixup_resnet110", 0)],
)
def test_shortcut_convs(name: str, expected: int) -> None:
    layers = prunable_layers(build_meta(name, 10))
    shortcuts = [layer for layer in layers if "shortcut" in layer.module_name.split(".")]
    assert len(shortcuts) == expected
    assert all(layer.weight.shape[2:] == (1, 1) for layer in shortcuts)


def test_fixup_init() -> None:
    model = build("fixup_resnet110", 10, seed=3)
    assert isinstance(model, FixupResNet)
    blocks = list(model.blocks())
    assert len(blocks) == model.num_blocks == 54
    assert model.fc.weight.count_nonzero() == 0
    assert model.fc.bias.count_nonzero() == 0
    assert all(block.conv2.weight.count_nonzero() == 0 for block in blocks)
    assert all(
        block.scale.item() == 1.0
        and block.bias1a.item() == block.bias1b.item() == 0.0
        and block.bias2a.item() == block.bias2b.item() == 0.0
        for block in blocks
    )

    for width in (16, 32, 64):
        convs = [b.conv1 for b in blocks if b.conv1.out_channels == width]
        assert len(convs) == 18
        expected = math.sqrt(2 / (9 * width)) / math.sqrt(54)
        assert fixup_std(convs[0], 54) == pytest.approx(expected, rel=1e-12)
        pooled = torch.cat([c.weight.flatten() for c in convs])
        assert pooled.std().item() == pytest.approx(expected, rel=0.03)
        assert abs(pooled.mean().item()) < 0.05 * expected

    # The stem keeps PyTorch's default init (uniform within 1/sqrt(fan_in)), not Kaiming normal.
    stem = model.conv1.weight
    assert stem.count_nonzero() == stem.numel()
    assert stem.abs().max().item() <= 1 / math.sqrt(27)
    # A zero classifier: Fixup outputs all-zero logits at init.
    with torch.no_grad():
        assert model(torch.randn(2, 3, 32, 32)).count_nonzero() == 0


@pytest.mark.parametrize("name", ["resnet18", "fixup_resnet110", "lenet5"])
def test_seed_gives_bit_identical_weights(name: str) -> None:
    first = build(name, 10, seed=1).state_dict()
    again = build(name, 10, seed=1).state_dict()
    other = build(name, 10, seed=2).state_dict()
    assert all(torch.equal(first[key], again[key]) for key in first)
    assert any(not torch.equal(first[key], other[key]) for key in first)


def test_lenet_pool_option() -> None:
    default = build("lenet5", 10)
    classic = build("lenet5", 10, pool="max")
    assert any(isinstance(m, nn.AvgPool2d) for m in default.modules())
    assert any(isinstance(m, nn.MaxPool2d) for m in classic.modules())
    assert parameter_count(classic) == parameter_count(default)
    with pytest.raises(ValueError, match="pool"):
        build("lenet5", 10, pool="min")


@pytest.mark.parametrize(
    ("name", "shape"),
    [(name, DIGITS) for name in ZOO] + [("lenet5", TINY), ("vgg19", (3, 16, 16))],
    ids=_shape_id,
)
def test_bad_input_shape_is_rejected(name: str, shape: tuple[int, int, int]) -> None:
    with pytest.raises(UnknownArchitecture, match=re.escape(repr(shape))) as info:
        build(name, 10, input_shape=shape)
    assert repr(name) in str(info.value)
    assert spec(name).accepts_text in str(info.value)
    with pytest.raises(UnknownArchitecture):
        summarize(name, 10, shape)


def test_resnet18_w16_is_a_quarter_width_resnet18() -> None:
    """The CPU study's variant keeps ResNet18's 21 prunable layers at 1/4 of the width."""
    narrow = architectures.summarize("resnet18_w16")
    assert narrow.prunable_layers == 21
    assert narrow.weights == 699_056
    full = architectures.build_meta("resnet18", 10)
    small = architectures.build_meta("resnet18_w16", 10)
    for (name, a), (other, b) in zip(
        architectures.prunable_parameters(full).items(),
        architectures.prunable_parameters(small).items(),
        strict=True,
    ):
        assert name == other
        assert a.shape[2:] == b.shape[2:]


# --------------------------------------------------------------------------------------------
# The registry: decorator, origin, training overrides, DCTpS alphas


@pytest.fixture
def clean_registry() -> Iterator[None]:
    """Whatever a test registers is gone afterwards."""
    before = dict(registry._ARCHS)
    yield
    registry._ARCHS.clear()
    registry._ARCHS.update(before)


def test_builtins_are_built_in_and_only_lenet_has_training_overrides() -> None:
    for name in architectures.available():
        assert spec(name).origin == "built-in"
        expected = {"batch_size": 64, "epochs": 160} if name == "lenet5" else {}
        assert dict(spec(name).training_overrides) == expected
    with pytest.raises(TypeError):
        spec("lenet5").training_overrides["epochs"] = 1  # type: ignore[index]


def test_decorator_registers_a_builder_with_defaults(clean_registry: None) -> None:
    @architectures.register("tiny_test_mlp")
    def tiny(num_classes: int, input_shape: tuple[int, int, int], hidden: int = 8) -> nn.Module:
        """Flatten, one hidden layer, classifier."""
        return nn.Sequential(
            nn.Flatten(), nn.Linear(math.prod(input_shape), hidden), nn.Linear(hidden, num_classes)
        )

    arch = spec("tiny_test_mlp")
    assert arch.factory is tiny and "tiny_test_mlp" in architectures.available()
    assert arch.description == "Flatten, one hidden layer, classifier."
    assert arch.accepts((7, 1, 3)) and arch.accepts_text == "any input"
    assert arch.kaiming_init and dict(arch.training_overrides) == {}
    assert arch.origin.startswith(f"{__name__} (") and arch.origin.endswith(".py)")
    model = build("tiny_test_mlp", 3, input_shape=(1, 2, 2), seed=5, hidden=4)
    assert [p.shape for p in model.parameters()] == [(4, 4), (4,), (3, 4), (3,)]
    again = build("tiny_test_mlp", 3, input_shape=(1, 2, 2), seed=5, hidden=4)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), again.parameters()))
    assert summarize("tiny_test_mlp", 3, (1, 2, 2)).weights == 4 * 8 + 8 * 3  # hidden=8


def test_decorator_options_accepts_and_overrides(clean_registry: None) -> None:
    def wide_enough(shape: tuple[int, int, int]) -> bool:
        """images of at least 4x4 pixels"""
        return min(shape[1:]) >= 4

    @architectures.register(
        "tiny_test_cnn",
        description="a conv",
        accepts=wide_enough,
        training_overrides={"batch_size": 32},
        kaiming_init=False,
        origin="somewhere",
    )
    def tiny(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
        return nn.Sequential(nn.Conv2d(input_shape[0], num_classes, 4), nn.Flatten())

    arch = spec("tiny_test_cnn")
    assert (arch.description, arch.accepts_text, arch.origin) == (
        "a conv",
        "images of at least 4x4 pixels",
        "somewhere",
    )
    assert dict(arch.training_overrides) == {"batch_size": 32} and not arch.kaiming_init
    with pytest.raises(UnknownArchitecture, match=r"at least 4x4 pixels"):
        build("tiny_test_cnn", 10, input_shape=(1, 3, 3))


def test_registration_errors(clean_registry: None) -> None:
    def ok(num_classes: int, input_shape: tuple[int, int, int]) -> nn.Module:
        return nn.Linear(1, num_classes)

    with pytest.raises(ValueError, match=r"'mlp' is already registered \(by built-in\)"):
        architectures.register("mlp")(ok)
    with pytest.raises(ValueError, match="bad architecture name"):
        architectures.register("two,names")(ok)
    with pytest.raises(TypeError, match="missing: input_shape"):
        architectures.register("no_shape")(lambda num_classes: nn.Linear(1, num_classes))
    with pytest.raises(TypeError, match="training override epochs must be a number"):
        architectures.register("bad_override", training_overrides={"epochs": "many"})(ok)
    assert not {"two,names", "no_shape", "bad_override"} & set(architectures.available())
    with pytest.raises(UnknownArchitecture, match=r"unknown architecture 'nope' \(valid: .*mlp"):
        spec("nope")


def test_dctps_alphas_finds_dctps_layers_by_type() -> None:
    model = build("small_cnn", 10, input_shape=(1, 8, 8), seed=0)
    assert architectures.dctps_alphas(model) == {}
    layers = prunable_layers(model)
    masks = {layer.name: torch.zeros_like(layer.weight, dtype=torch.bool) for layer in layers}
    dropped = layers[1].name
    del masks[dropped]  # that layer stays a plain conv
    alphas = {name: 0.5 + i for i, name in enumerate(masks)}
    to_dctps(model, masks, alphas=alphas)
    model.add_module("impostor", nn.Module())
    model.impostor.alpha = nn.Parameter(torch.tensor(9.0))  # a scalar alpha, not a DCTpS layer
    assert architectures.dctps_alphas(model) == pytest.approx(alphas)
    assert dropped not in architectures.dctps_alphas(model)
    with torch.no_grad():
        model.get_submodule(layers[0].module_name).alpha.fill_(2.0)
    assert architectures.dctps_alphas(model)[layers[0].name] == 2.0
