"""The Hopper (sm_90a) template of gemm, dense and bmm: wgmma fed by TMA through an mbarrier pipeline,
with producer/consumer warp specialization.

TVM 0.27 has the PTX pieces (``T.ptx.wgmma``, ``cp.async.bulk.tensor``, mbarriers, setmaxnreg) but no
TensorIntrin or schedule rule for them, so this path is not an s_tir schedule: the kernel is a
TVMScript (TIRx) function whose host part encodes the two TMA descriptors
(``T.tensormap_encode_tiled``, passed by value as ``__grid_constant__ CUtensorMap`` parameters) and
whose device part calls one injected ``__device__`` helper (``T.cuda.func_call(source_code=...)``):
the mainloop and epilogue in CUDA with inline PTX, rendered from the point's knobs.

Per block (``1 + consumers`` warpgroups of 128 threads):

    blockIdx -> (batch, m tile, n tile), grouped by `raster` m tiles for L2 reuse (`persistent`: one
      block per multiprocessor takes every gridDim.x-th tile, the pipeline running on across tiles)
    warpgroup 0 (producer; setmaxnreg.dec 40): one thread issues, per k tile of `block_k`, the TMA
      loads of A [block_m, block_k] and B into stage s (of `stages`), completing on full[s], after
      the consumers released s (empty[s])
    warpgroups 1.. (consumers; setmaxnreg.inc): wait full[s]; `m_tiles` x block_k/16 wgmma
      m64n{block_n}k16 from shared-memory descriptors (swizzle `swizzle` bytes); release s
    epilogue: accumulators -> output (fp32, or converted to the 16-bit input type), from registers or
      (`epilogue` 1) through a padded shared-memory tile and coalesced 16-byte stores

Shared operands are TMA boxes of swizzle-width rows (``swizzle`` / 2 elements): A and a K-major B
(dense: B^T[n, k]) as block_k / width boxes of [rows, width]; an MN-major B (gemm, bmm: B[k, n],
transposed by wgmma's tnspB) as block_n / width boxes of [block_k, width]. Out-of-bounds reads are
zero (TMA), stores are guarded, so M, N and K need no padding (K and N: multiples of 8, TMA's
16-byte strides).

Convolutions (conv1d/2d/3d, dil; channels-last NHWC activations, KRSC weights) are implicit GEMMs on
the same pipeline (``Gather``): M = output channels, A = the weights [K, taps x C] by TMA as above;
N = the output pixels of all images, B^T = their im2col rows, which no TMA box describes (taps,
strides, dilation, zero padding), so the whole producer warpgroup gathers them: 16-byte cp.async
copies of 8 channels (zero-filled where a tap falls in the padding) into the swizzled K-major layout
a TMA box of [block_n, width] would have left, the same layout the consumers' descriptors read. A
thread waits for its copies `lag` (stages - 2) stages later, fences them into the async proxy and
arrives on that stage's full barrier (count 1 + 128: the TMA's expect_tx and every producer thread).
The epilogue writes C[k, pixel] into the NK(D)HW output.
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

from heron_core.errors import ConfigError

OPS = ("gemm", "dense", "bmm")
CONV_OPS = ("conv1d", "conv2d", "conv3d", "dil")  # implicit GEMMs: B gathered by cp.async (Gather)
IN_DTYPES = ("float16", "bfloat16")
WARPGROUP = 128
BLOCK_N = (64, 128, 192, 256)  # wgmma n (a multiple of 8 up to 256), a whole number of 64-element swizzle rows
BLOCK_K = (32, 64, 128)
SWIZZLES = (32, 64, 128)  # bytes per swizzled row: TMA's CU_TENSOR_MAP_SWIZZLE_{32,64,128}B
SWIZZLE_TMA = {32: 1, 64: 2, 128: 3}  # CUtensorMapSwizzle
SWIZZLE_WGMMA = {32: 3, 64: 2, 128: 1}  # the matrix descriptor's layout type (bits 62-63)
STAGES = (2, 3, 4, 5, 6, 7, 8)
CONSUMERS = (1, 2)
M_TILES = (1, 2)  # m64 wgmma tiles per consumer warpgroup
RASTER = (1, 4, 8, 16)
SPLIT_K = (1, 2, 3, 4, 6, 8)  # k ranges per output tile (split-K), for shapes of fewer tiles than multiprocessors
PRODUCER_REGISTERS = 40
GATHER_PRODUCER_REGISTERS = 56  # a gathering producer computes addresses: more than the TMA issuer's 40
GATHER_THREADS = WARPGROUP  # the producer warpgroup's threads each gather part of every stage
REGISTER_FILE = 65536
RESERVED_REGISTERS = 40  # descriptors, addresses, loop state next to the accumulators
SMEM_ALIGN = 1024  # a 128-byte swizzle atom (8 rows): stage buffers start on it
EPILOGUE_PAD = 16  # bytes after each row of a staged output tile


@dataclass(frozen=True)
class Config:
    """One point of the wgmma template (the knobs), with what follows from them."""

    block_n: int
    block_k: int
    swizzle: int
    stages: int
    consumers: int
    m_tiles: int
    raster: int
    setmaxnreg: int
    persistent: int
    epilogue: int
    split_k: int = 1
    gather_cache: int = 0  # convolutions: 1 = cp.async.ca (through L1: taps re-read pixels), 0 = .cg
    producer_registers: int = PRODUCER_REGISTERS

    @property
    def block_m(self) -> int:
        return 64 * self.consumers * self.m_tiles

    @property
    def threads(self) -> int:
        return WARPGROUP * (1 + self.consumers)

    @property
    def width(self) -> int:
        """Elements per swizzled row (16-bit elements)."""
        return self.swizzle // 2

    @property
    def stage_bytes(self) -> int:
        return (self.block_m + self.block_n) * self.block_k * 2

    def c_pitch(self, out_bytes: int) -> int:
        """Bytes per row of the output tile staged in shared memory (epilogue 1): padded by 16 bytes, so
        that the 8 rows a warp writes at once start on different banks."""
        return self.block_n * out_bytes + EPILOGUE_PAD

    def smem_bytes(self, out_bytes: int) -> int:
        staged = self.epilogue * self.block_m * self.c_pitch(out_bytes)
        return SMEM_ALIGN + self.stages * self.stage_bytes + 16 * self.stages + staged

    @property
    def consumer_registers(self) -> int:
        return consumer_registers(self.consumers, self.setmaxnreg, self.producer_registers)


def consumer_registers(consumers: int, setmaxnreg: int, producer: int = PRODUCER_REGISTERS) -> int:
    """Registers a consumer thread may use: with setmaxnreg, what the producer's leave of the file;
    otherwise the cap __launch_bounds__(threads) implies (at most 255, in steps of 8)."""
    if setmaxnreg:
        return (REGISTER_FILE // WARPGROUP - producer) // consumers // 8 * 8
    return min(255, REGISTER_FILE // (WARPGROUP * (1 + consumers)) // 8 * 8)


KNOB_DEFAULTS = {"split_k": 1, "gather_cache": 0}  # knobs that points measured before them lack


def config_of(point, gather: Gather | None = None) -> Config:
    knobs = {k: point.get(k, KNOB_DEFAULTS.get(k)) for k in Config.__dataclass_fields__ if k != "producer_registers"}
    return Config(**knobs, producer_registers=GATHER_PRODUCER_REGISTERS if gather else PRODUCER_REGISTERS)


@dataclass(frozen=True)
class Gather:
    """A convolution as an implicit GEMM: what the producer needs to gather B^T[pixel, (taps, c)]."""

    images: int
    channels: int
    in_extents: tuple[int, ...]
    out_extents: tuple[int, ...]
    kernel_extents: tuple[int, ...]
    stride: int
    pad: int
    dilation: int

    @property
    def pixels(self) -> int:
        return prod(self.out_extents)


def gather_of(op) -> Gather | None:
    """The convolution's gather, or None for gemm, dense and bmm."""
    if op.name not in CONV_OPS:
        return None
    s = op.shape
    return Gather(s.N, s.C, s.in_extents, s.out_extents, s.kernel_extents, s.stride, s.pad, s.dilation)


def applies(op) -> bool:
    """Whether the wgmma template takes this operator: gemm, dense, bmm, and ungrouped channels-first
    convolutions whose channels fill 16-byte copies and whose images' pixels pair up in the output."""
    if op.name in OPS:
        return True
    if op.name not in CONV_OPS:
        return False
    s = op.shape
    return getattr(s, "group_count", 1) == 1 and not s.channels_last and s.C % 8 == 0 and prod(s.out_extents) % 2 == 0


def check_shape(op_name: str, M: int, N: int, K: int) -> None:
    if K % 8 or N % 8:
        raise ConfigError(
            f"the wgmma path (sm_90a) loads operands with TMA, whose row strides must be multiples of 16 bytes, and "
            f"stores output pairs: K and N must be multiples of 8, not K={K}, N={N} ({op_name})"
        )


# --- the space -----------------------------------------------------------------------------
def define(space, op_name: str, dims: tuple[int, int, int, int], max_shared: int, out_bytes: int, sm_count: int,
           gather: Gather | None = None) -> None:
    """The knobs of the wgmma template and the rules between them, as CP-SAT constraints."""
    batch, M, N, K = dims
    m = space.model
    b_kmajor = op_name == "dense" or gather is not None
    block_n = space.knob("block_n", [n for n in BLOCK_N if n <= max(64, -(-N // 64) * 64)], "wgmma n (block tile along n)")
    block_k = space.knob("block_k", [k for k in BLOCK_K if k <= max(32, -(-K // 32) * 32)], "k per pipeline stage")
    swizzle = space.knob("swizzle", SWIZZLES, "shared-memory swizzle (bytes per row) of the TMA boxes and descriptors")
    stages = space.knob("stages", STAGES, "TMA -> wgmma pipeline depth (mbarrier stages)")
    consumers = space.knob("consumers", CONSUMERS, "consumer warpgroups (each m_tiles x m64 rows)")
    m_tiles = space.knob("m_tiles", M_TILES, "m64 wgmma tiles per consumer warpgroup")
    raster = space.knob("raster", RASTER, "m tiles per group of the block order (L2 reuse)")
    setmaxnreg = space.knob("setmaxnreg", (0, 1), "1 = producer gives registers to consumers (setmaxnreg)")
    space.knob("persistent", (0, 1), "1 = one block per multiprocessor loops over the tiles (loads overlap epilogues)")
    epilogue = space.knob("epilogue", (0, 1), "0 = registers -> output; 1 = through shared memory, coalesced vector stores")
    split_k = space.knob("split_k", [s for s in SPLIT_K if s <= max(1, K // 64)], "k ranges per output tile (split-K)")
    if gather is not None:
        space.knob("gather_cache", (0, 1), "im2col gather: 0 = cp.async.cg (L2), 1 = cp.async.ca (L1 too)")
    # the swizzle width (elements per swizzled row) divides block_k, and block_n where B is MN-major
    width = space.var(16, 64, "swizzle_width")
    widths = [s // 2 if s in SWIZZLES else 0 for s in range(min(SWIZZLES), max(SWIZZLES) + 1)]
    m.AddElement(swizzle - min(SWIZZLES), widths, width)
    m.AddModuloEquality(0, block_k, width)
    if not b_kmajor:
        m.AddModuloEquality(0, block_n, width)
    # a block tile no larger than the extents need (M = 16 takes one m64 tile)
    block_m = space.product([consumers, m_tiles], max(CONSUMERS) * max(M_TILES), "m64_tiles")
    m.Add(64 * block_m <= max(64, -(-M // 64) * 64))
    m.Add(64 * space.product([raster, block_m], 64) - 64 * block_m < max(M, 1))
    k_tiles = space.var(1, K, "k_tiles")
    k_covered = space.product([k_tiles, block_k], K + max(BLOCK_K))
    m.Add(k_covered >= K)
    m.Add(k_covered < K + block_k)
    # split-K: each of split_k blocks of a tile takes >= k_tiles // split_k k tiles; a shape is split only
    # into one wave (tiles x split_k blocks <= multiprocessors), filling the idle ones of few-tile shapes
    # (M = 16 or 128: 43 tiles of 128 x 256 x 3 splits = 129 blocks on 132) without a partial second wave
    split_tiles = space.var(1, K, "k_tiles_per_split")
    m.Add(_mul(space, split_tiles, split_k, K) <= k_tiles)
    m.Add(_mul(space, split_tiles + 1, split_k, 2 * K + max(SPLIT_K)) > k_tiles)
    m.Add(stages <= split_tiles + 1)
    tiles_m, tiles_n = space.var(1, max(1, M), "tiles_m"), space.var(1, max(1, N), "tiles_n")
    for tiles, size, extent in ((tiles_m, 64 * block_m, M), (tiles_n, block_n, N)):
        m.Add(_mul(space, tiles, size, 2 * extent + 512) >= extent)
        m.Add(_mul(space, tiles - 1, size, 2 * extent + 512) < max(extent, 1))
    tiles = _mul(space, tiles_m, tiles_n, max(1, M) * max(1, N))
    split = _mul(space, tiles, split_k, max(SPLIT_K) * max(1, M) * max(1, N))
    m.Add(batch * split <= sm_count).OnlyEnforceIf(space.equals(split_k, 1).Not())
    # shared memory: every stage's A and B tiles, the alignment slack and the mbarriers
    stage = space.var(0, 1 << 24, "stage_bytes")
    rows = space.var(0, 1024, "stage_rows")
    m.Add(rows == 64 * block_m + block_n)
    m.Add(stage == 2 * space.product([rows, block_k], 1 << 22))
    # (epilogue 1: plus the output tile, block_m rows of block_n x out_bytes + the pad)
    pitch = space.var(0, 1 << 12, "c_pitch")
    m.Add(pitch == out_bytes * block_n + EPILOGUE_PAD)
    staged = space.var(0, 1 << 20, "staged_bytes")  # / 64 (block_m counts m64 tiles)
    staging = space.equals(epilogue, 1)
    m.Add(staged == space.product([block_m, pitch], 1 << 20)).OnlyEnforceIf(staging)
    m.Add(staged == 0).OnlyEnforceIf(staging.Not())
    m.Add(SMEM_ALIGN + space.product([stage, stages], 1 << 26) + 16 * stages + 64 * staged <= max_shared)
    # registers: a consumer's accumulators (m_tiles x block_n / 2 fp32) within its budget
    m.Add(consumers >= 2).OnlyEnforceIf(space.equals(setmaxnreg, 1))
    budget = space.var(0, 255, "consumer_registers")
    combos = [(c, r) for c in CONSUMERS for r in (0, 1)]
    key = space.var(0, len(combos) - 1)
    m.Add(key == 2 * (consumers - min(CONSUMERS)) + setmaxnreg)
    producer = GATHER_PRODUCER_REGISTERS if gather else PRODUCER_REGISTERS
    m.AddElement(key, [consumer_registers(c, r, producer) for c, r in combos], budget)
    m.Add(space.product([m_tiles, block_n], 512) + 2 * RESERVED_REGISTERS <= 2 * budget)


def _mul(space, a, b, hi: int):
    """A variable equal to a * b (affine expressions, either may be 0)."""
    out = space.var(0, hi)
    space.model.AddMultiplicationEquality(out, [a, b])
    return out


def features(cfg: Config, dims: tuple[int, int, int, int], sm_count: int, out_bytes: int) -> dict[str, float]:
    batch, M, N, _ = dims
    blocks = batch * -(-M // cfg.block_m) * -(-N // cfg.block_n) * cfg.split_k
    return {
        "block_m": cfg.block_m,
        "blocks": blocks,
        "waves": blocks / sm_count,
        "smem_bytes": cfg.smem_bytes(out_bytes),
        "threads": cfg.threads,
        "intensity": cfg.block_m * cfg.block_n / (cfg.block_m + cfg.block_n),
    }


# --- the device helper --------------------------------------------------------------------
def helper_name(cfg: Config, dims: tuple[int, int, int, int], b_kmajor: bool, in_dtype: str, out_dtype: str,
                gather: Gather | None = None) -> str:
    batch, M, N, K = dims
    geometry = () if gather is None else (*gather.in_extents, *gather.kernel_extents, gather.stride, gather.pad, gather.dilation)
    tag = "_".join(str(v) for v in (*cfg.__dict__.values(), batch, M, N, K, int(b_kmajor), *geometry))
    return f"heron_wgmma_{in_dtype[0]}{out_dtype[-2:]}_{tag}"


def _gather_loads(c: Config, g: Gather, N: int, K: int) -> str:
    """The producer warpgroup's im2col copies of one stage: thread t takes 16-byte chunk t % (block_k / 8)
    of rows t / (block_k / 8) + p * (128 / (block_k / 8)); a chunk is 8 channels of one tap of one output
    pixel, written where the swizzled TMA box [block_n, width] would hold it (address bits 7.. XORed into
    4..), zero-filled (src-size 0) in the padding and past N or K. (Unrolled 4 rows at a time: fully
    unrolled, the hoisted addresses spill.)"""
    cpr = c.block_k // 8
    rpp = GATHER_THREADS // cpr
    dims = range(len(g.in_extents))
    taps = []
    for d in reversed(dims):
        e = g.kernel_extents[d]
        taps.append(f"const int t{d} = tap % {e}; tap /= {e};" if d else f"const int t{d} = tap;")
    pix = []
    for d in reversed(dims):
        e = g.out_extents[d]
        pix.append(f"const int o{d} = n % {e}; n /= {e};")
    coords = " ".join(f"const int i{d} = o{d} * {g.stride} + off{d};" for d in dims)
    inside = " && ".join(f"(unsigned)i{d} < {g.in_extents[d]}u" for d in dims)
    offset = "(size_t)n"
    for d in dims:
        offset = f"({offset} * {g.in_extents[d]} + i{d})"
    mask = (c.swizzle // 16 - 1) << 4
    op = "ca" if c.gather_cache else "cg"
    return f"""{{
          const int k = kt * {c.block_k} + 8 * col;
          int tap = k / {g.channels};
          const int ch = k - tap * {g.channels};
          {" ".join(taps)}
          {" ".join(f"const int off{d} = t{d} * {g.dilation} - {g.pad};" for d in dims)}
          const unsigned int box = sB + ((8 * col) / {c.width}) * {c.block_n * c.swizzle} + ((8 * col) % {c.width}) * 2;
#pragma unroll 4
          for (int p = 0; p < {c.block_n // rpp}; ++p) {{
            const int r = tid / {cpr} + p * {rpp};
            int n = n0 + r;
            const bool row_ok = n < {N} && k < {K};
            {" ".join(pix)}
            {coords}
            const bool ok = row_ok && {inside};
            const unsigned short* src = ok ? xg + {offset} * {g.channels} + ch : xg;
            const unsigned int at = box + r * {c.swizzle};
            asm volatile("cp.async.{op}.shared.global [%0], [%1], 16, %2;\\n"
                         :: "r"(at ^ ((at >> 3) & {mask}u)), "l"(src), "r"(ok ? 16 : 0) : "memory");
          }}
        }}"""


def helper_source(cfg: Config, dims: tuple[int, int, int, int], b_kmajor: bool, in_dtype: str, out_dtype: str,
                  gather: Gather | None = None) -> str:
    """CUDA of the __device__ helper that is the whole kernel body (every thread of the block calls it)."""
    batch, M, N, K = dims
    ab = "f16" if in_dtype == "float16" else "bf16"
    c, bn, bk, w, sw = cfg, cfg.block_n, cfg.block_k, cfg.width, cfg.swizzle
    n_acc = bn // 2
    acc_list = ", ".join(f"%{i}" for i in range(n_acc))
    acc_ops = ", ".join(f'"+f"(d[{i}])' for i in range(n_acc))
    out16 = out_dtype != "float32"
    cvt = "cvt.rn.f16x2.f32" if out_dtype == "float16" else "cvt.rn.bf16x2.f32"
    tiles_m, tiles_n = -(-M // c.block_m), -(-N // bn)
    k_tiles = -(-K // bk)
    a_box_bytes = c.block_m * sw
    if b_kmajor:  # B^T[n, k]: block_k / width boxes of [block_n, width], like A
        b_loads = f"""for (int j = 0; j < {bk // w}; ++j)
          heron_tma3(sB + j * {bn * sw}, tmB, full, kt * {bk} + j * {w}, n0, bz);"""
        b_desc = f"heron_desc(sB + ((kk * 16) / {w}) * {bn * sw} + ((kk * 16) % {w}) * 2, 16, {8 * sw})"
    else:  # B[k, n]: block_n / width boxes of [block_k, width]; wgmma transposes (tnspB)
        b_loads = f"""for (int j = 0; j < {bn // w}; ++j)
          heron_tma3(sB + j * {bk * sw}, tmB, full, n0 + j * {w}, kt * {bk}, bz);"""
        b_desc = f"heron_desc(sB + kk * 16 * {sw}, {bk * sw}, {8 * sw})"
    name = helper_name(cfg, dims, b_kmajor, in_dtype, out_dtype, gather)
    regs = c.consumer_registers
    dec = f'asm volatile("setmaxnreg.dec.sync.aligned.u32 {c.producer_registers};\\n");' if c.setmaxnreg else ""
    inc = f'asm volatile("setmaxnreg.inc.sync.aligned.u32 {regs};\\n");' if c.setmaxnreg else ""
    store = (
        f"""unsigned int h0, h1;
            asm("{cvt} %0, %2, %1;" : "=r"(h0) : "f"(dd[i * 4 + 0]), "f"(dd[i * 4 + 1]));
            asm("{cvt} %0, %2, %1;" : "=r"(h1) : "f"(dd[i * 4 + 2]), "f"(dd[i * 4 + 3]));
            if (row < {M}) *reinterpret_cast<unsigned int*>(out + HERON_OUT(row, col)) = h0;
            if (row + 8 < {M}) *reinterpret_cast<unsigned int*>(out + HERON_OUT(row + 8, col)) = h1;"""
        if out16
        else f"""if (row < {M})
              *reinterpret_cast<float2*>(out + HERON_OUT(row, col)) = make_float2(dd[i * 4 + 0], dd[i * 4 + 1]);
            if (row + 8 < {M})
              *reinterpret_cast<float2*>(out + HERON_OUT(row + 8, col)) = make_float2(dd[i * 4 + 2], dd[i * 4 + 3]);"""
    )
    out_t = "unsigned short" if out16 else "float"
    epilogue = _epilogue(c, M, N, out16, cvt, store, out_t, N if gather is None else gather.pixels)
    split_statics, split_reduce = _split_k(c, name, batch * tiles_m * tiles_n)
    if gather is None:
        out_index = f"((size_t)(r) * {N} + (c))"
        b_param = "unsigned long long tmB"
        producer = f"""if (threadIdx.x == 0) {{
      int it = 0;
      for (int tile = blockIdx.x; tile < {batch} * TILES * SPLITS; tile += gridDim.x) {{
        HERON_TILE(tile)
        for (int kt = kb; kt < ke; ++kt, ++it) {{
          const int s = it % {c.stages};
          if (it >= {c.stages}) heron_bar_wait(bars + 8 * ({c.stages} + s), ((it / {c.stages}) - 1) & 1);
          const unsigned int full = bars + 8 * s;
          heron_bar_expect(full, {c.stage_bytes});
          const unsigned int sA = a_smem + s * {c.block_m * bk * 2}, sB = b_smem + s * {bn * bk * 2};
          for (int j = 0; j < {bk // w}; ++j)
            heron_tma3(sA + j * {a_box_bytes}, tmA, full, kt * {bk} + j * {w}, m0, bz);
          {b_loads}
        }}
      }}
    }}"""
    else:  # C[k, pixel] -> out[image, k, pixel]; every producer thread gathers, `lag` stages behind
        px, lag = gather.pixels, max(0, c.stages - 2)
        out_index = f"(((size_t)((c) / {px}) * {M} + (r)) * {px} + (c) % {px})"
        b_param = "const void* x_ptr"
        producer = f"""const unsigned short* xg = static_cast<const unsigned short*>(x_ptr);
    const int tid = threadIdx.x, col = tid % {bk // 8};
    int it = 0;
    for (int tile = blockIdx.x; tile < {batch} * TILES * SPLITS; tile += gridDim.x) {{
      HERON_TILE(tile)
      for (int kt = kb; kt < ke; ++kt, ++it) {{
        const int s = it % {c.stages};
        if (it >= {c.stages}) heron_bar_wait(bars + 8 * ({c.stages} + s), ((it / {c.stages}) - 1) & 1);
        const unsigned int full = bars + 8 * s;
        const unsigned int sA = a_smem + s * {c.block_m * bk * 2}, sB = b_smem + s * {bn * bk * 2};
        if (tid == 0) {{
          heron_bar_expect(full, {c.block_m * bk * 2});
          for (int j = 0; j < {bk // w}; ++j)
            heron_tma3(sA + j * {a_box_bytes}, tmA, full, kt * {bk} + j * {w}, m0, bz);
        }}
        {_gather_loads(c, gather, N, K)}
        asm volatile("cp.async.commit_group;\\n" ::: "memory");
        if (it >= {lag}) {{  // this thread's copies of stage it - lag have landed: hand them to the async proxy
          asm volatile("cp.async.wait_group {lag};\\n" ::: "memory");
          asm volatile("fence.proxy.async.shared::cta;\\n" ::: "memory");
          heron_bar_arrive(bars + 8 * ((it - {lag}) % {c.stages}));
        }}
      }}
    }}
    asm volatile("cp.async.wait_group 0;\\n" ::: "memory");
    asm volatile("fence.proxy.async.shared::cta;\\n" ::: "memory");
    for (int j = max(it - {lag}, 0); j < it; ++j) heron_bar_arrive(bars + 8 * (j % {c.stages}));"""
    return f"""
#ifndef HERON_WGMMA_COMMON
#define HERON_WGMMA_COMMON
__device__ __forceinline__ unsigned int heron_smem(const void* p) {{
  return static_cast<unsigned int>(__cvta_generic_to_shared(p));
}}
__device__ __forceinline__ void heron_bar_init(unsigned int bar, unsigned int count) {{
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\\n" :: "r"(bar), "r"(count) : "memory");
}}
__device__ __forceinline__ void heron_bar_wait(unsigned int bar, unsigned int parity) {{
  unsigned int done = 0;
  do {{
    asm volatile("{{\\n .reg .pred p;\\n mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\\n selp.u32 %0, 1, 0, p;\\n}}\\n"
                 : "=r"(done) : "r"(bar), "r"(parity) : "memory");
  }} while (!done);
}}
__device__ __forceinline__ void heron_bar_arrive(unsigned int bar) {{
  asm volatile("mbarrier.arrive.release.cta.shared::cta.b64 _, [%0];\\n" :: "r"(bar) : "memory");
}}
__device__ __forceinline__ void heron_bar_expect(unsigned int bar, unsigned int bytes) {{
  asm volatile("mbarrier.arrive.expect_tx.release.cta.shared::cta.b64 _, [%0], %1;\\n" :: "r"(bar), "r"(bytes) : "memory");
}}
__device__ __forceinline__ void heron_tma3(unsigned int dst, unsigned long long map, unsigned int bar, int c0, int c1, int c2) {{
  asm volatile("cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
               " [%0], [%1, {{%3, %4, %5}}], [%2];\\n"
               :: "r"(dst), "l"(map), "r"(bar), "r"(c0), "r"(c1), "r"(c2) : "memory");
}}
// wgmma matrix descriptor: start address, leading and stride byte offsets (16-byte units), swizzle mode
__device__ __forceinline__ unsigned long long heron_desc_raw(unsigned int addr, unsigned int lbo, unsigned int sbo,
                                                             unsigned long long mode) {{
  return (unsigned long long)((addr & 0x3FFFF) >> 4) | ((unsigned long long)((lbo >> 4) & 0x3FFF) << 16)
       | ((unsigned long long)((sbo >> 4) & 0x3FFF) << 32) | (mode << 62);
}}
#endif
#define heron_desc(addr, lbo, sbo) heron_desc_raw((addr), (lbo), (sbo), {SWIZZLE_WGMMA[sw]}ull)
#define HERON_OUT(r, c) {out_index}
{split_statics}__device__ __forceinline__ void {name}_mma(float* d, unsigned long long da, unsigned long long db) {{
  asm volatile("{{\\n.reg .pred p;\\nsetp.ne.b32 p, %{n_acc + 2}, 0;\\n"
               "wgmma.mma_async.sync.aligned.m64n{bn}k16.f32.{ab}.{ab} {{{acc_list}}},"
               " %{n_acc}, %{n_acc + 1}, p, 1, 1, 0, {0 if b_kmajor else 1};\\n}}\\n"
               : {acc_ops} : "l"(da), "l"(db), "r"(1));
}}
__device__ __forceinline__ void {name}(unsigned long long tmA, {b_param}, void* out_ptr, unsigned char* pool) {{
  const unsigned int base = (heron_smem(pool) + {SMEM_ALIGN - 1}) & ~{SMEM_ALIGN - 1}u;
  const unsigned int a_smem = base, b_smem = base + {c.stages * c.block_m * bk * 2};
  const unsigned int bars = base + {c.stages * c.stage_bytes};  // full[stages], empty[stages]
  const unsigned int c_smem = bars + {16 * c.stages};  // epilogue 1: each consumer's output tile
  const int wg = threadIdx.x / {WARPGROUP};
  if (threadIdx.x == 0) {{
    for (int s = 0; s < {c.stages}; ++s) {{
      heron_bar_init(bars + 8 * s, {1 + GATHER_THREADS if gather else 1});
      heron_bar_init(bars + 8 * ({c.stages} + s), {4 * c.consumers});
    }}
    asm volatile("fence.mbarrier_init.release.cluster;\\n" ::: "memory");
  }}
  __syncthreads();
  constexpr int KT = {k_tiles}, TILES = {tiles_m * tiles_n}, GROUP = {c.raster * tiles_n}, SPLITS = {c.split_k};
  // tiles in grouped raster order (`raster` m tiles share each run of n tiles: L2 reuse); a persistent
  // block takes every gridDim.x-th tile, its pipeline running on across tiles (the next tile's loads
  // overlap this one's epilogue); split-K: work unit = split * (batch * TILES) + tile, split sp taking k tiles
  // [kb, ke)
#define HERON_TILE(unit) \\
  const int sp = (unit) / ({batch} * TILES), kb = sp * KT / SPLITS, ke = (sp + 1) * KT / SPLITS; \\
  const int tile_id = (unit) % ({batch} * TILES); \\
  const int bz = tile_id / TILES, pid = tile_id % TILES, first_m = (pid / GROUP) * {c.raster}; \\
  const int rows = min({tiles_m} - first_m, {c.raster}); \\
  const int m0 = (first_m + (pid % GROUP) % rows) * {c.block_m}, n0 = ((pid % GROUP) / rows) * {bn};
  if (wg == 0) {{
    {dec}
    {producer}
  }} else {{
    {inc}
    const int cw = wg - 1, lane = threadIdx.x % 32, warp = (threadIdx.x / 32) % 4;
    int it = 0;
    for (int tile = blockIdx.x; tile < {batch} * TILES * SPLITS; tile += gridDim.x) {{
      HERON_TILE(tile)
      float d[{c.m_tiles}][{n_acc}];
#pragma unroll
      for (int t = 0; t < {c.m_tiles}; ++t)
#pragma unroll
        for (int i = 0; i < {n_acc}; ++i) d[t][i] = 0.f;
      for (int kt = kb; kt < ke; ++kt, ++it) {{
        const int s = it % {c.stages};
        heron_bar_wait(bars + 8 * s, (it / {c.stages}) & 1);
        const unsigned int sA = a_smem + s * {c.block_m * bk * 2}, sB = b_smem + s * {bn * bk * 2};
        asm volatile("wgmma.fence.sync.aligned;\\n" ::: "memory");
#pragma unroll
        for (int kk = 0; kk < {bk // 16}; ++kk) {{
          const unsigned long long db = {b_desc};
#pragma unroll
          for (int t = 0; t < {c.m_tiles}; ++t) {{
            const unsigned int row = (cw * {c.m_tiles} + t) * 64;
            const unsigned long long da =
                heron_desc(sA + ((kk * 16) / {w}) * {a_box_bytes} + row * {sw} + ((kk * 16) % {w}) * 2, 16, {8 * sw});
            {name}_mma(d[t], da, db);
          }}
        }}
        asm volatile("wgmma.commit_group.sync.aligned;\\n" ::: "memory");
        asm volatile("wgmma.wait_group.sync.aligned 1;\\n" ::: "memory");
        // the previous k tile's wgmma group has finished reading its stage
        if (kt > kb && lane == 0) heron_bar_arrive(bars + 8 * ({c.stages} + (it - 1) % {c.stages}));
      }}
      asm volatile("wgmma.wait_group.sync.aligned 0;\\n" ::: "memory");
      if (lane == 0) heron_bar_arrive(bars + 8 * ({c.stages} + (it - 1) % {c.stages}));
{split_reduce}{epilogue}
    }}
  }}
#undef HERON_TILE
}}
#undef heron_desc
#undef HERON_OUT
"""


def _split_k(c: Config, name: str, tiles: int) -> tuple[str, str]:
    """Split-K's reduction (split_k > 1): each split adds its accumulators into an fp32 workspace
    (float4 atomics in L2); the warpgroup that arrives last at its tile's counter reads the sum back,
    zeroes the workspace and resets the counter for the next launch, and alone runs the epilogue. The
    workspace and counters are static device arrays (zeroed when the module loads), so the kernel
    needs no memset; concurrent launches of one module would share them."""
    if c.split_k == 1:
        return "", ""
    quads = c.m_tiles * c.block_n // 8  # float4s of accumulators per thread
    slots = tiles * c.consumers
    statics = f"""__device__ float4 {name}_ws[{slots * quads * WARPGROUP}];
__device__ unsigned int {name}_count[{slots}];
"""
    reduce = f"""      {{
        const int slot = tile_id * {c.consumers} + cw, tid = threadIdx.x % {WARPGROUP};
        float4* ws = {name}_ws + (size_t)slot * {quads * WARPGROUP} + tid;
#pragma unroll
        for (int t = 0; t < {c.m_tiles}; ++t)
#pragma unroll
          for (int i = 0; i < {c.block_n // 8}; ++i)
            atomicAdd(ws + (t * {c.block_n // 8} + i) * {WARPGROUP},
                      make_float4(d[t][4 * i], d[t][4 * i + 1], d[t][4 * i + 2], d[t][4 * i + 3]));
        __threadfence();
        unsigned int last = 0;
        asm volatile("bar.sync %0, 128;\\n" :: "r"(1 + cw) : "memory");
        if (tid == 0) last = atomicAdd({name}_count + slot, 1u) == SPLITS - 1;
        asm volatile("{{\\n .reg .pred p, q;\\n setp.ne.u32 p, %1, 0;\\n bar.red.or.pred q, %2, 128, p;\\n"
                     " selp.u32 %0, 1, 0, q;\\n}}\\n" : "=r"(last) : "r"(last), "r"(1 + cw) : "memory");
        if (!last) continue;  // another split of this tile finishes it
        __threadfence();
#pragma unroll
        for (int t = 0; t < {c.m_tiles}; ++t)
#pragma unroll
          for (int i = 0; i < {c.block_n // 8}; ++i) {{
            float4* q = ws + (t * {c.block_n // 8} + i) * {WARPGROUP};
            const float4 v = __ldcg(q);
            __stcg(q, make_float4(0.f, 0.f, 0.f, 0.f));
            d[t][4 * i] = v.x; d[t][4 * i + 1] = v.y; d[t][4 * i + 2] = v.z; d[t][4 * i + 3] = v.w;
          }}
        if (tid == 0) {name}_count[slot] = 0;
      }}
"""
    return statics, reduce


def _epilogue(c: Config, M: int, N: int, out16: bool, cvt: str, store: str, out_t: str, run: int) -> str:
    """A consumer's accumulators -> the output: straight from registers (epilogue 0), or staged in shared
    memory (rows padded by 16 bytes) and copied out in coalesced stores (epilogue 1) of 16 bytes, or of 8
    or 4 where the output's contiguous runs (``run`` elements: a convolution's pixels per image) are
    not a multiple of 16 bytes, so that no store crosses a run or is misaligned."""
    bn, ob = c.block_n, (2 if out16 else 4)
    if not c.epilogue:
        return f"""      {out_t}* out = reinterpret_cast<{out_t}*>(out_ptr) + (size_t)bz * {M * N};
#pragma unroll
      for (int t = 0; t < {c.m_tiles}; ++t) {{
        const int row = m0 + (cw * {c.m_tiles} + t) * 64 + warp * 16 + lane / 4;
#pragma unroll
        for (int i = 0; i < {bn // 8}; ++i) {{
          const int col = n0 + i * 8 + 2 * (lane % 4);
          if (col < {N}) {{
            const float* dd = d[t];
            {store}
          }}
        }}
      }}"""
    pitch, rows = c.c_pitch(ob), 64 * c.m_tiles
    if out16:
        put = f"""unsigned int h0, h1;
          asm("{cvt} %0, %2, %1;" : "=r"(h0) : "f"(d[t][i * 4 + 0]), "f"(d[t][i * 4 + 1]));
          asm("{cvt} %0, %2, %1;" : "=r"(h1) : "f"(d[t][i * 4 + 2]), "f"(d[t][i * 4 + 3]));
          asm volatile("st.shared.u32 [%0], %1;" :: "r"(at), "r"(h0));
          asm volatile("st.shared.u32 [%0], %1;" :: "r"(at + {8 * pitch}), "r"(h1));"""
    else:
        put = f"""asm volatile("st.shared.v2.f32 [%0], {{%1, %2}};" :: "r"(at), "f"(d[t][i * 4 + 0]), "f"(d[t][i * 4 + 1]));
          asm volatile("st.shared.v2.f32 [%0], {{%1, %2}};"
                       :: "r"(at + {8 * pitch}), "f"(d[t][i * 4 + 2]), "f"(d[t][i * 4 + 3]));"""
    vb = next(v for v in (16, 8, 4) if run * ob % v == 0)  # bytes per store
    chunks_per_row = bn * ob // vb
    vec, ld = {16: ("uint4", "v4.u32 {%0, %1, %2, %3}"), 8: ("uint2", "v2.u32 {%0, %1}"), 4: ("uint1", "u32 %0")}[vb]
    regs = ", ".join(f'"=r"(v.{f})' for f in "xyzw"[: vb // 4])
    return f"""      const unsigned int cs = c_smem + cw * {rows * pitch};
      asm volatile("bar.sync %0, 128;\\n" :: "r"(1 + cw) : "memory");  // the previous tile's copy-out is done
#pragma unroll
      for (int t = 0; t < {c.m_tiles}; ++t)
#pragma unroll
        for (int i = 0; i < {bn // 8}; ++i) {{
          const unsigned int at = cs + (t * 64 + warp * 16 + lane / 4) * {pitch} + (i * 8 + 2 * (lane % 4)) * {ob};
          {put}
        }}
      asm volatile("bar.sync %0, 128;\\n" :: "r"(1 + cw) : "memory");
      char* out = reinterpret_cast<char*>(out_ptr) + (size_t)bz * {M * N * ob};
      for (int q = threadIdx.x % 128; q < {rows * chunks_per_row}; q += 128) {{
        const int r = q / {chunks_per_row}, cc = q % {chunks_per_row};
        const int grow = m0 + cw * {rows} + r, gcol = n0 + cc * {vb // ob};
        {vec} v;
        asm volatile("ld.shared.{ld}, [%{vb // 4}];" : {regs} : "r"(cs + r * {pitch} + cc * {vb}));
        if (grow < {M} && gcol < {N}) *reinterpret_cast<{vec}*>(out + HERON_OUT(grow, gcol) * {ob}) = v;
      }}"""


# --- the TVMScript kernel -------------------------------------------------------------------
def prim_func(op, cfg: Config, in_dtype: str, out_dtype: str, batch: int, M: int, N: int, K: int, b_kmajor: bool,
              sm_count: int):
    """The kernel for one point: host-side TMA descriptors, a device entry calling the helper."""
    from tvm.script import tirx as T

    a_spec, b_spec = op.inputs
    out_spec = op.output
    dims = (batch, M, N, K)
    name = helper_name(cfg, dims, b_kmajor, in_dtype, out_dtype)
    source = helper_source(cfg, dims, b_kmajor, in_dtype, out_dtype)
    sw, w, bm, bn, bk = cfg.swizzle, cfg.width, cfg.block_m, cfg.block_n, cfg.block_k
    swz = SWIZZLE_TMA[sw]
    b_dims = (K, N, batch) if b_kmajor else (N, K, batch)  # innermost first
    b_box = (w, bn, 1) if b_kmajor else (w, bk, 1)
    warps = cfg.threads // 32
    tiles = batch * -(-M // bm) * -(-N // bn)
    grid = min(tiles * cfg.split_k, sm_count) if cfg.persistent else tiles * cfg.split_k
    smem = cfg.smem_bytes(2 if out_dtype != "float32" else 4)

    @T.prim_func
    def kernel(
        A: T.Buffer(a_spec.shape, in_dtype),
        B: T.Buffer(b_spec.shape, in_dtype),
        C: T.Buffer(out_spec.shape, out_dtype),
    ):
        T.func_attr({"tirx.noalias": True})
        ta: T.let[T.TensorMap()] = T.tvm_stack_alloca("tensormap", 1)
        T.tensormap_encode_tiled(ta, A.data, K, M, batch, K * 2, M * K * 2, w, bm, 1, 1, 1, 1,
                                 descriptor_dtype=in_dtype, rank=3, interleave=0, swizzle=swz, l2_promotion=2,
                                 oob_fill=0, force_cu_dtype=-1)  # fmt: skip
        tb: T.let[T.TensorMap()] = T.tvm_stack_alloca("tensormap", 1)
        T.tensormap_encode_tiled(tb, B.data, b_dims[0], b_dims[1], b_dims[2], b_dims[0] * 2, b_dims[0] * b_dims[1] * 2,
                                 b_box[0], b_box[1], b_box[2], 1, 1, 1,
                                 descriptor_dtype=in_dtype, rank=3, interleave=0, swizzle=swz, l2_promotion=2,
                                 oob_fill=0, force_cu_dtype=-1)  # fmt: skip
        with T.attr({"tirx.device_entry": T.bool(True), "tirx.dyn_smem_bytes": smem}):
            _bx = T.cta_id([grid])
            _warp = T.warp_id([warps])
            _lane = T.lane_id([32])
            pool = T.alloc_buffer((0,), "uint8", scope="shared.dyn")
            T.evaluate(T.cuda.func_call(name, T.address_of(ta), T.address_of(tb), C.data, pool.data, source_code=source))

    return kernel


def conv_prim_func(op, cfg: Config, in_dtype: str, out_dtype: str, shapes: tuple[tuple[int, ...], ...], sm_count: int):
    """The implicit-GEMM convolution kernel for one point: the weights' TMA descriptor ([K, taps x C],
    KRSC), the channels-last activations by address (``shapes``: the packed x, w and the output)."""
    from tvm.script import tirx as T

    g = gather_of(op)
    M, N, K = op.shape.K, g.images * g.pixels, g.channels * prod(g.kernel_extents)
    dims = (1, M, N, K)
    name = helper_name(cfg, dims, True, in_dtype, out_dtype, g)
    source = helper_source(cfg, dims, True, in_dtype, out_dtype, g)
    w, bm = cfg.width, cfg.block_m
    swz = SWIZZLE_TMA[cfg.swizzle]
    warps = cfg.threads // 32
    tiles = -(-M // bm) * -(-N // cfg.block_n)
    grid = min(tiles * cfg.split_k, sm_count) if cfg.persistent else tiles * cfg.split_k
    smem = cfg.smem_bytes(2 if out_dtype != "float32" else 4)
    x_shape, w_shape, out_shape = shapes

    @T.prim_func
    def kernel(
        X: T.Buffer(x_shape, in_dtype),
        W: T.Buffer(w_shape, in_dtype),
        C: T.Buffer(out_shape, out_dtype),
    ):
        T.func_attr({"tirx.noalias": True})
        ta: T.let[T.TensorMap()] = T.tvm_stack_alloca("tensormap", 1)
        T.tensormap_encode_tiled(ta, W.data, K, M, 1, K * 2, M * K * 2, w, bm, 1, 1, 1, 1,
                                 descriptor_dtype=in_dtype, rank=3, interleave=0, swizzle=swz, l2_promotion=2,
                                 oob_fill=0, force_cu_dtype=-1)  # fmt: skip
        with T.attr({"tirx.device_entry": T.bool(True), "tirx.dyn_smem_bytes": smem}):
            _bx = T.cta_id([grid])
            _warp = T.warp_id([warps])
            _lane = T.lane_id([32])
            pool = T.alloc_buffer((0,), "uint8", scope="shared.dyn")
            T.evaluate(T.cuda.func_call(name, T.address_of(ta), X.data, C.data, pool.data, source_code=source))

    return kernel
