from heron_core import hookimpl
from heron_core.registry import PluginSpec
from heron_frontend_onnx.importer import OnnxFrontend


@hookimpl
def heron_frontends():
    return [
        PluginSpec(
            "frontend",
            "onnx",
            OnnxFrontend,
            description=".onnx files: Conv, ConvTranspose, MatMul, Gemm, QLinear*/ *Integer and QDQ int8 layers",
        )
    ]
