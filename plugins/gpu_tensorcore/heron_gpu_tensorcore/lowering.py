"""What TVM 0.27's CUDA lowering needs so that mma.sync kernels keep their fragments in registers.

mma.sync and ldmatrix operands live in "warp"-scope buffers, which the LowerWarpMemory pass turns
into per-thread ("local") arrays, 1/32 of the size. In TVM 0.27 that pass has two limits a GEMM
tile runs into:

- it lowers only the first warp buffer of each statement sequence: the A and B fragments, the
  accumulator (and the software pipeline's epilogue copies) are allocated side by side, so all but
  one stayed warp-sized arrays in local memory, indexed by threadIdx.x (measured on the H200:
  GEMM 4096^3 13x slower than the same tiles with WMMA);
- it finds a buffer's per-thread layout from the ldmatrix offsets (``... + 8 * threadIdx.x``),
  which common-subexpression elimination turns into opaque let-bound variables.

So for a function marked with ``WARP_FRAGMENTS`` (``mark``), the pipeline below runs TVM's own
lowering with CSE off, and the device passes run LowerWarpMemory until nothing changes. Functions
without the mark are lowered exactly as before (one more LowerWarpMemory that finds nothing).
``install`` registers it under TVM's default pipeline name in the calling process.
"""

from __future__ import annotations

WARP_FRAGMENTS = "heron.warp_fragments"
TIRX = "heron.tirx"  # a TIRx (TVMScript with device-entry scopes) kernel: TVM's "tirx" pipeline lowers it
MAX_ROUNDS = 32
_installed = False


def mark(mod):
    """``mod`` with its main function marked as holding warp-scope fragments."""
    mod["main"] = mod["main"].with_attr(WARP_FRAGMENTS, 1)
    return mod


def mark_tirx(mod):
    """``mod`` with its main function marked for TVM's TIRx lowering (the wgmma kernels)."""
    mod["main"] = mod["main"].with_attr(TIRX, 1)
    return mod


def _marked(mod, key: str = WARP_FRAGMENTS) -> bool:
    return any(f.attrs is not None and key in f.attrs for f in mod.functions.values())


def install() -> None:
    """Wrap TVM's default ("s_tir") TIR pipeline, once per process."""
    global _installed
    if _installed:
        return
    import tvm
    import tvm.s_tir.pipeline  # noqa: F401  (registers "s_tir")
    import tvm_ffi
    from tvm.tirx import compilation_pipeline as cp

    base_factory = cp.PIPELINE_MAP["s_tir"]
    tirx_factory = cp.PIPELINE_MAP["tirx"]

    def factory(**kwargs):
        base, host_passes, device_passes = base_factory(**kwargs)

        @tvm.transform.module_pass(opt_level=0, name="heron.s_tir_pipeline")
        def pipeline(mod, _ctx):
            if _marked(mod, TIRX):
                return tirx_factory()[0](mod)
            if not _marked(mod):
                return base(mod)
            cur = tvm.transform.PassContext.current()
            config = {**dict(cur.config), "tirx.disable_cse_tir": True}
            with tvm.transform.PassContext(opt_level=cur.opt_level, config=config):
                return base(mod)

        def all_warp_memory():
            @tvm.transform.module_pass(opt_level=0, name="heron.LowerAllWarpMemory")
            def lower(mod, _ctx):
                for _ in range(MAX_ROUNDS):
                    lowered = tvm.tirx.transform.LowerWarpMemory()(mod)
                    if tvm_ffi.structural_equal(lowered, mod):
                        break
                    mod = lowered
                return mod

            return tvm.ir.transform.Sequential([lower, device_passes()])

        return pipeline, host_passes, all_warp_memory

    cp.register_tir_pipeline("s_tir", factory)
    _installed = True
