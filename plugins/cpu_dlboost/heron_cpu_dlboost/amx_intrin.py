"""Intel AMX micro-kernels: a block of up to 2x2 accumulator tiles swept over a run of K steps.

One call computes C[mt*rows, nt*16] += A[mt*rows, kc*tk*g] x B[nt, kc*tk, 16, g]:

- A: ``rows`` rows (any row stride) of ``4*tk`` bytes per K step: u8, or bf16 pairs;
- B: the weight packed VNNI-style, (lane blocks of 16, K/g, 16, g) with g = 4 (int8) or 2 (bf16),
  so that one K step of a 16-lane block is ``tk`` rows of 64 contiguous bytes;
- C: s32 (tdpbusd) or f32 (tdpbf16ps), ``rows`` x 16 per tile, any row stride.

Tile registers: accumulators 0 .. mt*nt-1, then the A tiles, then the B tiles (at most 8 in
all). A call loads the accumulators from C, runs ``kc`` K steps of tile loads and ``tdpbusd`` /
``tdpbf16ps`` and stores the accumulators back. A ``zero`` call (one that covers the whole
reduction) starts its accumulators with ``tilezero`` instead, and the reduction's init block is
tensorized with ``register_init``'s empty intrinsic. With ``a_packed``, A is read tile-packed
(row tiles, K steps, rows, 4*tk bytes): every A tile 16 contiguous rows of 64 bytes. The tile
configuration (``ldtilecfg``: palette 1, each register's rows and bytes per row) is loaded once
per iteration of the kernel's parallel loop, by a block that ``with_tile_config`` puts there (it
serializes the tile pipeline: once per call would cost every call a drain). Everything is
emitted through LLVM's x86 AMX intrinsics in their explicit-register form (``llvm.x86.ldtilecfg``,
``tileloadd64``, ``tdpbusd``, ``tdpbf16ps``, ``tilestored64``, ``tilezero``): the ``.internal`` forms
take ``x86_amx`` values, which a TVM expression cannot carry.

TVM 0.27 has no AMX tensor intrinsic; intrinsics are registered on demand, one per shape.
"""

from __future__ import annotations

from dataclasses import dataclass

LANES = 16  # int32 / fp32 columns of an accumulator tile
ROW_BYTES = 64  # bytes per tile row
MAX_ROWS = 16
TILES = 8

DTYPES = {
    # in_dtype: (A dtype, B dtype, C dtype, elements per 4-byte group, LLVM dot intrinsic)
    "int8": ("uint8", "int8", "int32", 4, "llvm.x86.tdpbusd"),
    "bfloat16": ("bfloat16", "bfloat16", "float32", 2, "llvm.x86.tdpbf16ps"),
}


@dataclass(frozen=True)
class TileShape:
    """One micro-kernel: ``mt`` x ``nt`` accumulator tiles of ``rows`` x 16, ``kc`` K steps of
    ``tk`` 4-byte groups each; ``kind`` 'int8' or 'bfloat16'."""

    kind: str
    rows: int
    mt: int
    nt: int
    kc: int
    tk: int
    a_step: int = 1  # consecutive tile rows are a_step rows of A apart (a convolution's stride)
    lanes_first: bool = False  # the compute's lane axis comes before its row axis (NKPQ outputs)
    zero: bool = False  # the call covers the whole reduction: accumulators start at zero (tilezero), C is only stored
    a_packed: bool = False  # A is packed tile by tile: (row tiles, K steps, rows, tk*g), each tile contiguous

    def __post_init__(self):
        if not (1 <= self.rows <= MAX_ROWS and 1 <= self.tk <= ROW_BYTES // 4):
            raise ValueError(f"tile rows {self.rows} / K groups {self.tk} out of range")
        if self.mt * self.nt + self.mt + self.nt > TILES:
            raise ValueError(f"{self.mt}x{self.nt} accumulators need more than {TILES} tile registers")
        if self.a_packed and self.a_step != 1:
            raise ValueError("a tile-packed A has consecutive rows: no row step")

    @property
    def group(self) -> int:
        return DTYPES[self.kind][3]

    @property
    def name(self) -> str:
        order = "_nm" if self.lanes_first else ""
        zero = "_z" if self.zero else ""
        packed = "_ap" if self.a_packed else ""
        return f"heron_amx_{self.kind}_r{self.rows}s{self.a_step}_m{self.mt}_n{self.nt}_k{self.kc}x{self.tk}{order}{zero}{packed}"

    def config_bytes(self) -> list[int]:
        """The 64-byte LDTILECFG operand: palette 1, bytes per row (u16) and rows (u8) per register."""
        cfg = [0] * 64
        cfg[0] = 1
        shapes = (
            [(self.rows, 4 * LANES)] * (self.mt * self.nt)  # accumulators: rows x 16 dwords
            + [(self.rows, 4 * self.tk)] * self.mt  # A: rows x tk groups
            + [(self.tk, ROW_BYTES)] * self.nt  # B: tk rows x 16 lanes x 4 bytes
        )
        for reg, (rows, colsb) in enumerate(shapes):
            cfg[16 + 2 * reg], cfg[17 + 2 * reg] = colsb & 0xFF, colsb >> 8
            cfg[48 + reg] = rows
        return cfg


_registered: set[str] = set()


def micro_loops(shape: TileShape) -> list[str]:
    """The loops of one call, outer to inner, that the schedule keeps inside the tensorized nest:
    loops of extent 1 (e.g. kc = 1) are left outside it, where they change nothing."""
    loops = [
        ("ks", shape.kc),
        ("i", shape.mt),
        ("j", shape.nt),
        ("r", shape.rows),
        ("lane", LANES),
        ("kk", shape.tk * shape.group),
    ]
    return [name for name, extent in loops if extent > 1]


def _binding(*terms) -> str:
    return " + ".join(t for t in terms if t) or "0"


def _spatial_axes(shape: TileShape, loops: list[str]) -> str:
    """TVMScript lines binding a call's block axes vm (rows of C) and vn (its lanes) to ``loops``,
    in the compute's axis order."""
    vm = _binding(f"i * {shape.rows}" if "i" in loops else None, "r" if "r" in loops else None)
    vn = _binding(f"j * {LANES}" if "j" in loops else None, "lane")
    axes = [f"vm = T.axis.spatial({shape.mt * shape.rows}, {vm})", f"vn = T.axis.spatial({shape.nt * LANES}, {vn})"]
    return "\n                ".join(axes[::-1] if shape.lanes_first else axes)


def _desc(shape: TileShape):
    """The computation one call performs, with exactly the loops the schedule tensorizes (TVMScript
    built as text: a loop of extent 1 must be absent, not present and simplified away)."""
    from tvm.script import from_source

    a_dt, b_dt, c_dt, g, _ = DTYPES[shape.kind]
    rows, mt, nt, kc, tk, step = shape.rows, shape.mt, shape.nt, shape.kc, shape.tk, shape.a_step
    M, N, K = mt * rows, nt * LANES, kc * tk * g
    MA = (M - 1) * step + 1
    extent = {"ks": kc, "i": mt, "j": nt, "r": rows, "lane": LANES, "kk": tk * g}
    loops = micro_loops(shape)
    term = lambda name, scale: f"{name} * {scale}" if name in loops else None  # noqa: E731

    vk = _binding(term("ks", tk * g), "kk")
    axes = _spatial_axes(shape, loops)
    if shape.a_packed:
        kw = tk * g
        a_shape, a_region = f"({mt}, {kc}, {rows}, {kw})", f"0:{mt}, 0:{kc}, 0:{rows}, 0:{kw}"
        a_index = f"vm // {rows}, vk // {kw}, vm % {rows}, vk % {kw}"
    else:
        a_shape, a_region, a_index = f"({MA}, {K})", f"0:{MA}, 0:{K}", f"vm * {step}, vk"
    src = f"""
# from tvm.script import tirx as T
@T.prim_func(s_tir=True)
def desc(a: T.handle, b: T.handle, c: T.handle):
    A = T.match_buffer(a, {a_shape}, "{a_dt}", offset_factor=1)
    B = T.match_buffer(b, ({nt}, {kc * tk}, {LANES}, {g}), "{b_dt}", offset_factor=1)
    C = T.match_buffer(c, ({M}, {N}), "{c_dt}", offset_factor=1)
    with T.sblock("root"):
        T.reads(C[0:{M}, 0:{N}], A[{a_region}], B[0:{nt}, 0:{kc * tk}, 0:{LANES}, 0:{g}])
        T.writes(C[0:{M}, 0:{N}])
        for {", ".join(loops)} in T.grid({", ".join(str(extent[n]) for n in loops)}):
            with T.sblock("update"):
                {axes}
                vk = T.axis.reduce({K}, {vk})
                C[vm, vn] = C[vm, vn] + T.Cast("{c_dt}", A[{a_index}]) * T.Cast(
                    "{c_dt}", B[vn // {LANES}, vk // {g}, vn % {LANES}, vk % {g}]
                )
"""
    return from_source(src)


def register(shape: TileShape, generic: bool = False) -> str:
    """Register (once per process) the tensor intrinsic for ``shape``; returns its name.
    ``generic``: the same computation in plain vector code, for checking schedules on CPUs
    without AMX (correct, not fast)."""
    name = shape.name + ("_generic" if generic else "")
    if name in _registered:
        return name
    from tvm import s_tir, tirx
    from tvm.script import tirx as T

    a_dt, b_dt, c_dt, g, dot = DTYPES[shape.kind]
    rows, mt, nt, kc, tk, step = shape.rows, shape.mt, shape.nt, shape.kc, shape.tk, shape.a_step
    M, N, K, kw = mt * rows, nt * LANES, kc * tk * g, tk * g
    itemsize = 4 // g
    acc, a0, b0 = 0, mt * nt, mt * nt + mt
    zero = shape.zero  # accumulators from tilezero instead of C (read by the TVMScript below)
    # Tile addresses are raw pointers into the buffers (tvm_access_ptr, which also keeps TVM's bf16
    # legalization from widening a bf16 buffer of the kernel to f32 behind the tile unit's back), typed
    # as the buffers are stored when the pointers are lowered: bf16 as uint16.
    a_ptr, b_ptr = ("uint16", "uint16") if shape.kind == "bfloat16" else (a_dt, b_dt)
    # A's layout, as the TVMScript below reads it: (rows of A, K) with a row step, or tile-packed
    # (row tiles, K steps, rows, 4*tk bytes) with every A tile contiguous.
    lda, lda1 = tirx.Var("lda", "int32"), tirx.Var("lda1", "int32")
    if shape.a_packed:
        a_shape, a_strides = (mt, kc, rows, kw), [lda, lda1, kw, 1]
        a_region = (slice(0, mt), slice(0, kc), slice(0, rows), slice(0, kw))

        def a_tile(A, i, ks):  # (pointer to the tile of row tile i, K step ks; its row stride in bytes)
            ptr = T.tvm_access_ptr(T.type_annotation(a_ptr), A.data, A.elem_offset + i * lda + ks * lda1, rows * kw, 1)
            return ptr, kw * itemsize  # the packing's rows: 64 bytes only for a whole K step (tk = 64 / 4 / itemsize)

        def a_at(A, i, r, k):  # element (row r of row tile i, k) of the call's A
            return A[i, k // kw, r, k % kw]

    else:
        MA = (M - 1) * step + 1  # rows of A a call spans
        a_shape, a_strides, a_region = (MA, K), [lda, 1], (slice(0, MA), slice(0, K))

        def a_tile(A, i, ks):
            ptr = T.tvm_access_ptr(
                T.type_annotation(a_ptr), A.data, A.elem_offset + i * rows * step * lda + ks * tk * g, rows * step * lda, 1
            )
            return ptr, lda * step * itemsize

        def a_at(A, i, r, k):
            return A[(i * rows + r) * step, k]

    def c_tile(C, ldc, i, j, access):  # pointer to accumulator tile (i, j) of the call's C (access: 1 read, 2 write)
        return T.tvm_access_ptr(T.type_annotation(c_dt), C.data, C.elem_offset + i * rows * ldc + j * LANES, rows * ldc, access)

    desc = _desc(shape)

    @T.prim_func(s_tir=True)
    def impl(a: T.handle, b: T.handle, c: T.handle) -> None:
        ldb = T.int32()
        ldc = T.int32()
        A = T.match_buffer(a, a_shape, a_dt, offset_factor=1, strides=a_strides)
        B = T.match_buffer(b, (nt, kc * tk, LANES, g), b_dt, offset_factor=1, strides=[ldb, LANES * g, g, 1])
        C = T.match_buffer(c, (M, N), c_dt, offset_factor=1, strides=[ldc, 1])
        with T.sblock("root"):
            T.reads(C[0:M, 0:N], A[a_region], B[0:nt, 0 : kc * tk, 0:LANES, 0:g])
            T.writes(C[0:M, 0:N])
            for i in T.unroll(mt):
                for j in T.unroll(nt):
                    if zero:
                        T.evaluate(T.call_llvm_intrin("void", "llvm.x86.tilezero", T.uint8(acc + i * nt + j)))
                    else:
                        T.evaluate(
                            T.call_llvm_intrin(
                                "void",
                                "llvm.x86.tileloadd64",
                                T.uint8(acc + i * nt + j),
                                c_tile(C, ldc, i, j, 1),
                                T.int64(ldc * 4),
                            )
                        )
            for ks in T.serial(kc):
                for i in T.unroll(mt):
                    T.evaluate(
                        T.call_llvm_intrin(
                            "void", "llvm.x86.tileloadd64", T.uint8(a0 + i), a_tile(A, i, ks)[0], T.int64(a_tile(A, i, ks)[1])
                        )
                    )
                for j in T.unroll(nt):
                    T.evaluate(
                        T.call_llvm_intrin(
                            "void",
                            "llvm.x86.tileloadd64",
                            T.uint8(b0 + j),
                            T.tvm_access_ptr(
                                T.type_annotation(b_ptr), B.data, B.elem_offset + j * ldb + ks * tk * LANES * g, tk * LANES * g, 1
                            ),
                            T.int64(ROW_BYTES),
                        )
                    )
                for i in T.unroll(mt):
                    for j in T.unroll(nt):
                        T.evaluate(T.call_llvm_intrin("void", dot, T.uint8(acc + i * nt + j), T.uint8(a0 + i), T.uint8(b0 + j)))
            for i in T.unroll(mt):
                for j in T.unroll(nt):
                    T.evaluate(
                        T.call_llvm_intrin(
                            "void", "llvm.x86.tilestored64", T.uint8(acc + i * nt + j), c_tile(C, ldc, i, j, 2), T.int64(ldc * 4)
                        )
                    )

    @T.prim_func(s_tir=True)
    def generic_impl(a: T.handle, b: T.handle, c: T.handle) -> None:
        ldb = T.int32()
        ldc = T.int32()
        A = T.match_buffer(a, a_shape, a_dt, offset_factor=1, strides=a_strides)
        B = T.match_buffer(b, (nt, kc * tk, LANES, g), b_dt, offset_factor=1, strides=[ldb, LANES * g, g, 1])
        C = T.match_buffer(c, (M, N), c_dt, offset_factor=1, strides=[ldc, 1])
        with T.sblock("root"):
            T.reads(C[0:M, 0:N], A[a_region], B[0:nt, 0 : kc * tk, 0:LANES, 0:g])
            T.writes(C[0:M, 0:N])
            if zero:
                for i, j, r in T.grid(mt, nt, rows):
                    for lane in T.vectorized(LANES):
                        C[i * rows + r, j * LANES + lane] = T.cast(0, c_dt)
            for i, j, r, kk in T.grid(mt, nt, rows, K):
                for lane in T.vectorized(LANES):
                    C[i * rows + r, j * LANES + lane] = C[i * rows + r, j * LANES + lane] + T.cast(
                        a_at(A, i, r, kk), c_dt
                    ) * T.cast(B[j, kk // g, lane, kk % g], c_dt)

    s_tir.TensorIntrin.register(name, desc, generic_impl if generic else impl, override=True)
    _registered.add(name)
    return name


def register_init(shape: TileShape, generic: bool = False) -> str:
    """Register the intrinsic that the reduction's init block of a ``zero`` shape is tensorized with: C = 0 over
    one call's accumulator tiles, emitted as nothing, because the call that follows starts its accumulators at
    zero and covers the whole reduction (brgemm's beta = 0: no zeroing pass over the output, no load of C)."""
    if not shape.zero:
        raise ValueError("only a zero-start micro-kernel may elide the init of its accumulators")
    name = shape.name + "_init" + ("_generic" if generic else "")
    if name in _registered:
        return name
    from tvm import s_tir
    from tvm.script import from_source
    from tvm.script import tirx as T

    c_dt = DTYPES[shape.kind][2]
    rows, mt, nt = shape.rows, shape.mt, shape.nt
    M, N = mt * rows, nt * LANES
    extent = {"i": mt, "j": nt, "r": rows, "lane": LANES}
    loops = [n for n in micro_loops(shape) if n in extent]
    axes = _spatial_axes(shape, loops)
    zero = "T.float32(0)" if c_dt == "float32" else "0"
    src = f"""
# from tvm.script import tirx as T
@T.prim_func(s_tir=True)
def desc(c: T.handle):
    C = T.match_buffer(c, ({M}, {N}), "{c_dt}", offset_factor=1)
    with T.sblock("root"):
        T.reads()
        T.writes(C[0:{M}, 0:{N}])
        for {", ".join(loops)} in T.grid({", ".join(str(extent[n]) for n in loops)}):
            with T.sblock("init"):
                {axes}
                C[vm, vn] = {zero}
"""
    desc = from_source(src)

    @T.prim_func(s_tir=True)
    def impl(c: T.handle) -> None:
        ldc = T.int32()
        C = T.match_buffer(c, (M, N), c_dt, offset_factor=1, strides=[ldc, 1])
        with T.sblock("root"):
            T.reads()
            T.writes(C[0:M, 0:N])
            T.evaluate(0)

    s_tir.TensorIntrin.register(name, desc, impl, override=True)
    _registered.add(name)
    return name


def config_words(shape: TileShape) -> list[int]:
    """The LDTILECFG operand of ``shape`` as 8 little-endian 64-bit words."""
    cfg = shape.config_bytes()
    return [int.from_bytes(bytes(cfg[8 * w : 8 * w + 8]), "little") for w in range(8)]


def load_tile_config(shape: TileShape):
    """A TVMScript macro that loads the tile configuration of ``shape`` (LDTILECFG from a local buffer)."""
    from tvm.script import tirx as T

    words = config_words(shape)
    assert all(words[w] == 0 for w in (1, 4, 5, 7)), "palette 1 leaves words 1, 4, 5 and 7 zero"

    @T.macro
    def load() -> None:
        tile_cfg = T.alloc_local((8,), "uint64")
        for w in T.unroll(8):
            tile_cfg[w] = T.uint64(0)
        tile_cfg[0] = T.uint64(words[0])
        tile_cfg[2] = T.uint64(words[2])
        tile_cfg[3] = T.uint64(words[3])
        tile_cfg[6] = T.uint64(words[6])
        T.call_llvm_intrin("void", "llvm.x86.ldtilecfg", T.tvm_access_ptr(T.type_annotation("uint64"), tile_cfg.data, 0, 8, 1))

    return load


def _config_block(shape: TileShape):
    """A block that loads the tile configuration of ``shape`` (a statement to put in a loop body)."""
    from tvm.script import tirx as T

    load = load_tile_config(shape)

    @T.prim_func(s_tir=True)
    def holder() -> None:
        with T.sblock("amx_tile_config"):
            T.reads()
            T.writes()
            load()

    return holder.body.block.body


def _insert_at_loop(stmt, loop_name: str, first) -> tuple[object, int]:
    """``stmt`` with ``first`` put at the top of the body of each parallel loop named ``loop_name``
    (searched through blocks, sequences and loops); returns the new statement and how many loops got it."""
    from tvm import s_tir, tirx

    if isinstance(stmt, tirx.For):
        if stmt.kind == tirx.ForKind.PARALLEL and stmt.loop_var.name == loop_name:
            body, found = tirx.SeqStmt([first, stmt.body]), 1
        else:
            body, found = _insert_at_loop(stmt.body, loop_name, first)
        if not found:
            return stmt, 0
        return tirx.For(stmt.loop_var, stmt.min, stmt.extent, stmt.kind, body, stmt.thread_binding, stmt.annotations), found
    if isinstance(stmt, tirx.SeqStmt):
        parts = [_insert_at_loop(s, loop_name, first) for s in stmt.seq]
        found = sum(n for _, n in parts)
        return (tirx.SeqStmt([s for s, _ in parts]), found) if found else (stmt, 0)
    if isinstance(stmt, s_tir.SBlockRealize):
        b = stmt.block
        body, found = _insert_at_loop(b.body, loop_name, first)
        if not found:
            return stmt, 0
        block = s_tir.SBlock(
            b.iter_vars, b.reads, b.writes, b.name_hint, body, b.init, b.alloc_buffers, b.match_buffers, b.annotations
        )
        return s_tir.SBlockRealize(stmt.iter_values, stmt.predicate, block), found
    return stmt, 0


def with_tile_config(mod, loop_name: str, shape: TileShape):
    """``mod`` with the tile configuration of ``shape`` loaded at the top of the body of the parallel
    loop named ``loop_name`` (the kernel's parallel loop: every thread that runs tiles loads it)."""
    import tvm

    func = mod["main"]
    body, found = _insert_at_loop(func.body, loop_name, _config_block(shape))
    if found != 1:
        raise ValueError(f"no single parallel loop '{loop_name}' to load the AMX tile configuration in")
    return tvm.IRModule({"main": func.with_body(body)})
