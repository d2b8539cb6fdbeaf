"""Heron target ``tensorcore``: fp16 tensor operators on NVIDIA Tensor Cores (CUDA WMMA)."""
