"""Heron target ``dlboost``: int8 tensor operators on x86 CPUs with AVX-512 VNNI."""
