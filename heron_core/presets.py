"""Named networks: the original Heron's figure-10 layers (ResNet-50, VGG-16, Inception-v3, BERT-base;
tests/figure10/configs in its repository, shapes and per-layer occurrence counts as listed there),
with the batch size (and BERT's sequence length) as parameters: ``resnet50:batch=1``,
``bert-base:batch=1,seq=128``. The core's frontend ``presets``."""

from __future__ import annotations

from heron_core.errors import ConfigError
from heron_core.network import Found, Frontend, Network, build_network

REFERENCE_BATCH = 16  # every figure-10 layer was listed at batch 16
REFERENCE_SEQ = 512  # and BERT at sequence length 512
CONV2D = ("N", "C", "H", "W", "K", "R", "S", "stride", "pad", "dilation")
FIELDS = {"conv2d": CONV2D, "gemm": ("M", "K", "N"), "bmm": ("batch", "M", "K", "N")}

# network -> (case, operator, shape values in FIELDS order at batch 16 / seq 512, occurrences)
LAYERS: dict[str, tuple[tuple[str, str, tuple[int, ...], int], ...]] = {
    "resnet50": (
        ("layer-0", "conv2d", (16, 3, 224, 224, 64, 7, 7, 2, 3, 1), 1),
        ("layer-1", "conv2d", (16, 64, 56, 56, 64, 1, 1, 1, 0, 1), 1),
        ("layer-2", "conv2d", (16, 64, 56, 56, 64, 3, 3, 1, 1, 1), 3),
        ("layer-3", "conv2d", (16, 64, 56, 56, 256, 1, 1, 1, 0, 1), 4),
        ("layer-4", "conv2d", (16, 256, 56, 56, 64, 1, 1, 1, 0, 1), 2),
        ("layer-5", "conv2d", (16, 256, 56, 56, 128, 1, 1, 2, 0, 1), 1),
        ("layer-6", "conv2d", (16, 128, 28, 28, 128, 3, 3, 1, 1, 1), 4),
        ("layer-7", "conv2d", (16, 256, 56, 56, 512, 1, 1, 2, 0, 1), 1),
        ("layer-8", "conv2d", (16, 128, 28, 28, 512, 1, 1, 1, 0, 1), 4),
        ("layer-9", "conv2d", (16, 512, 28, 28, 128, 1, 1, 1, 0, 1), 3),
        ("layer-10", "conv2d", (16, 512, 28, 28, 256, 1, 1, 2, 0, 1), 1),
        ("layer-11", "conv2d", (16, 256, 14, 14, 256, 3, 3, 1, 1, 1), 6),
        ("layer-12", "conv2d", (16, 512, 28, 28, 1024, 1, 1, 2, 0, 1), 1),
        ("layer-13", "conv2d", (16, 256, 14, 14, 1024, 1, 1, 1, 0, 1), 6),
        ("layer-14", "conv2d", (16, 1024, 14, 14, 256, 1, 1, 1, 0, 1), 5),
        ("layer-15", "conv2d", (16, 1024, 14, 14, 512, 1, 1, 2, 0, 1), 1),
        ("layer-16", "conv2d", (16, 512, 7, 7, 512, 3, 3, 1, 1, 1), 3),
        ("layer-17", "conv2d", (16, 1024, 14, 14, 2048, 1, 1, 2, 0, 1), 1),
        ("layer-18", "conv2d", (16, 512, 7, 7, 2048, 1, 1, 1, 0, 1), 3),
        ("layer-19", "conv2d", (16, 2048, 7, 7, 512, 1, 1, 1, 0, 1), 2),
        ("layer-20", "gemm", (16, 2048, 1000), 1),
    ),
    "vgg16": (
        ("layer-0", "conv2d", (16, 3, 224, 224, 64, 3, 3, 1, 1, 1), 1),
        ("layer-1", "conv2d", (16, 64, 224, 224, 64, 3, 3, 1, 1, 1), 1),
        ("layer-2", "conv2d", (16, 64, 112, 112, 128, 3, 3, 1, 1, 1), 1),
        ("layer-3", "conv2d", (16, 128, 112, 112, 128, 3, 3, 1, 1, 1), 2),
        ("layer-4", "conv2d", (16, 128, 56, 56, 256, 3, 3, 1, 1, 1), 1),
        ("layer-5", "conv2d", (16, 256, 56, 56, 256, 3, 3, 1, 1, 1), 3),
        ("layer-6", "conv2d", (16, 256, 28, 28, 512, 3, 3, 1, 1, 1), 1),
        ("layer-7", "conv2d", (16, 512, 28, 28, 512, 3, 3, 1, 1, 1), 3),
        ("layer-8", "conv2d", (16, 512, 14, 14, 512, 3, 3, 1, 1, 1), 1),
        ("layer-9", "conv2d", (16, 512, 7, 7, 512, 3, 3, 1, 1, 1), 3),
    ),
    "inceptionv3": (
        ("layer-0", "conv2d", (16, 3, 299, 299, 32, 3, 3, 2, 0, 1), 1),
        ("layer-1", "conv2d", (16, 32, 149, 149, 32, 3, 3, 1, 0, 1), 1),
        ("layer-2", "conv2d", (16, 32, 147, 147, 64, 3, 3, 1, 1, 1), 1),
        ("layer-3", "conv2d", (16, 64, 73, 73, 80, 1, 1, 1, 0, 1), 1),
        ("layer-4", "conv2d", (16, 80, 73, 73, 192, 3, 3, 1, 0, 1), 1),
        ("layer-5", "conv2d", (16, 192, 35, 35, 64, 1, 1, 1, 0, 1), 2),
        ("layer-6", "conv2d", (16, 192, 35, 35, 48, 1, 1, 1, 0, 1), 1),
        ("layer-7", "conv2d", (16, 48, 35, 35, 64, 5, 5, 1, 2, 1), 3),
        ("layer-8", "conv2d", (16, 64, 35, 35, 96, 3, 3, 1, 1, 1), 4),
        ("layer-9", "conv2d", (16, 96, 35, 35, 96, 3, 3, 1, 1, 1), 3),
        ("layer-10", "conv2d", (16, 192, 35, 35, 32, 1, 1, 1, 0, 1), 1),
        ("layer-11", "conv2d", (16, 256, 35, 35, 64, 1, 1, 1, 0, 1), 3),
        ("layer-12", "conv2d", (16, 256, 35, 35, 48, 1, 1, 1, 0, 1), 1),
        ("layer-13", "conv2d", (16, 288, 35, 35, 64, 1, 1, 1, 0, 1), 4),
        ("layer-14", "conv2d", (16, 288, 35, 35, 48, 1, 1, 1, 0, 1), 1),
        ("layer-15", "conv2d", (16, 288, 35, 35, 384, 3, 3, 2, 0, 1), 1),
        ("layer-16", "conv2d", (16, 96, 35, 35, 96, 3, 3, 2, 0, 1), 1),
        ("layer-17", "conv2d", (16, 768, 17, 17, 192, 1, 1, 1, 0, 1), 12),
        ("layer-18", "conv2d", (16, 768, 17, 17, 128, 1, 1, 1, 0, 1), 2),
        ("layer-19", "conv2d", (16, 128, 17, 17, 128, 1, 7, 1, 0, 1), 2),
        ("layer-20", "conv2d", (16, 128, 17, 17, 192, 7, 1, 1, 3, 1), 1),
        ("layer-21", "conv2d", (16, 128, 17, 17, 128, 7, 1, 1, 3, 1), 2),
        ("layer-22", "conv2d", (16, 128, 17, 17, 192, 1, 7, 1, 0, 1), 1),
        ("layer-23", "conv2d", (16, 768, 17, 17, 160, 1, 1, 1, 0, 1), 4),
        ("layer-24", "conv2d", (16, 160, 17, 17, 160, 1, 7, 1, 0, 1), 4),
        ("layer-25", "conv2d", (16, 160, 17, 17, 192, 7, 1, 1, 3, 1), 2),
        ("layer-26", "conv2d", (16, 160, 17, 17, 160, 7, 1, 1, 3, 1), 4),
        ("layer-27", "conv2d", (16, 160, 17, 17, 192, 1, 7, 1, 0, 1), 2),
        ("layer-28", "conv2d", (16, 192, 17, 17, 192, 1, 7, 1, 0, 1), 4),
        ("layer-29", "conv2d", (16, 192, 17, 17, 192, 7, 1, 1, 3, 1), 4),
        ("layer-30", "conv2d", (16, 192, 17, 17, 320, 3, 3, 2, 0, 1), 1),
        ("layer-31", "conv2d", (16, 192, 17, 17, 192, 3, 3, 2, 0, 1), 1),
        ("layer-32", "conv2d", (16, 1280, 8, 8, 320, 1, 1, 1, 0, 1), 1),
        ("layer-33", "conv2d", (16, 1280, 8, 8, 384, 1, 1, 1, 0, 1), 1),
        ("layer-34", "conv2d", (16, 384, 8, 8, 384, 1, 3, 1, 0, 1), 4),
        ("layer-35", "conv2d", (16, 384, 8, 8, 384, 3, 1, 1, 1, 1), 4),
        ("layer-36", "conv2d", (16, 1280, 8, 8, 448, 1, 1, 1, 0, 1), 1),
        ("layer-37", "conv2d", (16, 448, 8, 8, 384, 3, 3, 1, 1, 1), 2),
        ("layer-38", "conv2d", (16, 1280, 8, 8, 192, 1, 1, 1, 0, 1), 1),
        ("layer-39", "conv2d", (16, 2048, 8, 8, 320, 1, 1, 1, 0, 1), 1),
        ("layer-40", "conv2d", (16, 2048, 8, 8, 384, 1, 1, 1, 0, 1), 1),
        ("layer-41", "conv2d", (16, 2048, 8, 8, 448, 1, 1, 1, 0, 1), 1),
        ("layer-42", "conv2d", (16, 2048, 8, 8, 192, 1, 1, 1, 0, 1), 1),
    ),
    "bert": (
        ("B1", "bmm", (16, 512, 768, 768), 60),
        ("B2", "bmm", (192, 512, 64, 512), 12),
        ("B3", "bmm", (192, 512, 512, 64), 12),
    ),
}
NAMES = {
    "resnet50": "resnet50",
    "vgg16": "vgg16",
    "inception-v3": "inceptionv3",
    "inceptionv3": "inceptionv3",
    "bert-base": "bert",
    "bert": "bert",
}
SEQ_DIMS = {"B1": ("M",), "B2": ("M", "N"), "B3": ("M", "K")}  # BERT: dimensions that are the sequence length


def scaled(network: str, case: str, op: str, values: tuple[int, ...], batch: int, seq: int) -> dict[str, int]:
    """A layer's shape at another batch size (and sequence length): the batch dimension (conv N,
    the classifier's M, bmm's batch, which is batch x heads for attention) scales with it."""
    shape = dict(zip(FIELDS[op], values))
    dim = {"conv2d": "N", "gemm": "M", "bmm": "batch"}[op]
    shape[dim] = shape[dim] * batch // REFERENCE_BATCH
    if network == "bert":
        for d in SEQ_DIMS[case]:
            shape[d] = shape[d] * seq // REFERENCE_SEQ
    return shape


class Presets(Frontend):
    def names(self) -> list[str]:
        return list(NAMES)

    def load(self, source: str, options: dict[str, int]) -> Network:
        network = NAMES[source]
        allowed = {"batch", "seq"} if network == "bert" else {"batch"}
        unknown = sorted(set(options) - allowed)
        if unknown:
            raise ConfigError(f"network {source} takes {', '.join(sorted(allowed))}, not {', '.join(unknown)}")
        batch, seq = options.get("batch", REFERENCE_BATCH), options.get("seq", REFERENCE_SEQ)
        if batch < 1 or seq < 1:
            raise ConfigError(f"network {source}: batch and seq must be positive")
        found = [
            Found(case if i == 0 else f"{case}#{i + 1}", op, scaled(network, case, op, values, batch, seq), "float")
            for case, op, values, count in LAYERS[network]
            for i in range(count)
        ]
        label = f"{source}:batch={batch}" + (f",seq={seq}" if network == "bert" else "")
        return build_network(label, label, "presets", found, [])
