"""Heron frontend ``onnx``: an ONNX model file -> a :class:`heron_core.network.Network`."""
