"""heron_core.torch: Heron kernels as torch custom ops, nn.Linear / nn.Conv2d swapped for dynamic
int8 on CPU, checked against PyTorch (dynamic-quantization tolerance), eager and under torch.compile."""

import json

import pytest
from conftest import MICROKERNEL, heron

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import heron_core.torch as heron_torch  # noqa: E402
from heron_core.torch import swap_modules  # noqa: E402


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(32, 32)
        self.head = nn.Linear(32, 5)  # N = 5: no kernel (lanes of 16), stays PyTorch's

    def forward(self, x, t):
        return self.conv(x).relu(), self.head(self.fc(t).relu())


@pytest.fixture(scope="module")
def library(tmp_path_factory):
    root = tmp_path_factory.mktemp("torchlib")
    cfg = {
        "target": {"name": "dlboost", "microkernel": MICROKERNEL, "num_cores": 1},
        "cases": [
            {"op": "dense", "shape": {"M": 8, "K": 32, "N": 32}},
            {"op": "conv2d", "shape": {"N": 2, "C": 8, "H": 6, "W": 6, "K": 16, "R": 3, "S": 3, "pad": 1}},
        ],
        "trials": 2,
        "batch_size": 2,
    }
    dequantizing = {**cfg, "cases": cfg["cases"][:1], "out_dtype": "float32"}  # fc's shape once more, dequantized
    for i, c in enumerate((cfg, dequantizing)):
        (root / f"cfg{i}.json").write_text(json.dumps(c))
        heron("tune", "-c", str(root / f"cfg{i}.json"), "--quiet", db=root / "r.db", check=True)
    heron("export", str(root / "lib"), "--all", db=root / "r.db", check=True)
    return root / "lib"


def test_swapped_model_matches_pytorch_eager_and_compiled(library):
    torch.manual_seed(0)
    model = Tiny().eval()
    x, t = torch.randn(2, 8, 6, 6), torch.randn(2, 4, 32)
    with torch.no_grad():
        expected = model(x, t)
        assert swap_modules(model, library, (x, t)) == ["conv", "fc"]
        # fc takes the kernel that dequantizes in its epilogue; conv the s32 one and an addcmul
        assert model.fc.name in heron_torch._DEQUANTIZING and model.conv.name not in heron_torch._DEQUANTIZING
        got = model(x, t)
        compiled = torch.compile(model)(x, t)
        # eager, the layers call their kernels directly; traced, through the custom ops (no graph break)
        assert torch._dynamo.explain(model)(x, t).graph_break_count == 0
    for e, g, c in zip(expected, got, compiled):
        # dynamic int8: errors of a few activation and weight quantization steps
        assert (g - e).abs().max() <= 0.03 * e.abs().max()
        assert torch.equal(g, c)


def test_kernel_op_reads_torch_tensors_in_place(library):
    """The custom ops have fake implementations: shapes propagate without running the kernels."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        a = torch.empty(8, 32, dtype=torch.uint8)
        out = torch.ops.heron.kernel([a, torch.empty(2, 8, 16, 4, dtype=torch.int8)], "unregistered", [8, 32], torch.int32)
        w, v = torch.empty(2, 8, 16, 4, dtype=torch.int8), torch.empty(32)
        layer = torch.ops.heron.dynamic_int8(torch.empty(8, 32), w, v, v, v, "unregistered", [8, 32])
    assert out.shape == (8, 32) and out.dtype == torch.int32
    assert layer.shape == (8, 32) and layer.dtype == torch.float32
