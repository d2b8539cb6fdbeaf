"""Deny AMX to this process so that vendor libraries fall back to AVX-512 VNNI.

Linux hands out AMX tile state only on request: a library calls
``arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`` once and uses AMX only if that succeeds
(oneDNN, ONNX Runtime's MLAS). :func:`restrict` caps oneDNN's ISA through its environment variables
and installs a seccomp filter that makes that request fail with EPERM, for this process and every
thread or child it starts afterwards. Call it before torch / onnxruntime (or anything that might
request AMX) is imported, while the process has a single thread: the filter cannot be removed.
"""

from __future__ import annotations

import ctypes
import errno
import os

ISA_CAP = "AVX512_CORE_VNNI"
ISA_ENV = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")

SYS_ARCH_PRCTL = 158  # x86_64
ARCH_REQ_XCOMP_PERM = 0x1023
XFEATURE_XTILEDATA = 18
AUDIT_ARCH_X86_64 = 0xC000003E
PR_SET_NO_NEW_PRIVS, PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 38, 22, 2
SECCOMP_RET_ALLOW, SECCOMP_RET_ERRNO = 0x7FFF0000, 0x00050000
# classic BPF opcodes: BPF_LD|BPF_W|BPF_ABS, BPF_JMP|BPF_JEQ|BPF_K, BPF_RET|BPF_K
LD_ABS, JEQ, RET = 0x20, 0x15, 0x06
# offsets in struct seccomp_data {int nr; u32 arch; u64 instruction_pointer; u64 args[6]}
# (little endian: args[0]'s low word at 16)
OFF_NR, OFF_ARCH, OFF_ARG0 = 0, 4, 16


class SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint32)]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]


def _program() -> list[tuple[int, int, int, int]]:
    """arch_prctl(ARCH_REQ_XCOMP_PERM, ...) on x86_64 -> EPERM; every other syscall -> allowed."""
    deny, allow = SECCOMP_RET_ERRNO | errno.EPERM, SECCOMP_RET_ALLOW
    return [
        (LD_ABS, 0, 0, OFF_ARCH),
        (JEQ, 0, 5, AUDIT_ARCH_X86_64),  # another ABI: allow
        (LD_ABS, 0, 0, OFF_NR),
        (JEQ, 0, 3, SYS_ARCH_PRCTL),
        (LD_ABS, 0, 0, OFF_ARG0),  # the kernel reads the option as an int: compare the low word only
        (JEQ, 0, 1, ARCH_REQ_XCOMP_PERM),
        (RET, 0, 0, deny),
        (RET, 0, 0, allow),
    ]


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def restrict() -> None:
    """Cap oneDNN at AVX-512 VNNI and deny AMX permission requests; raises OSError on failure."""
    for var in ISA_ENV:
        os.environ[var] = ISA_CAP
    if os.uname().machine != "x86_64":
        return
    prog = _program()
    filters = (SockFilter * len(prog))(*(SockFilter(*ins) for ins in prog))
    fprog = SockFprog(len(prog), filters)
    libc, ul = _libc(), ctypes.c_ulong
    if libc.prctl(PR_SET_NO_NEW_PRIVS, ul(1), ul(0), ul(0), ul(0)) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS) failed")
    if libc.prctl(PR_SET_SECCOMP, ul(SECCOMP_MODE_FILTER), ctypes.byref(fprog), ul(0), ul(0)) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP) failed")


def probe() -> str:
    """What ``arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA)`` answers now: 'granted' or the errno name.

    After :func:`restrict` it must be EPERM. Do not call it in a process that should keep AMX
    unrequested: on an AMX machine without the filter it grants the permission."""
    if os.uname().machine != "x86_64":
        return "not x86_64"
    libc, ul = _libc(), ctypes.c_ulong
    if libc.syscall(ctypes.c_long(SYS_ARCH_PRCTL), ul(ARCH_REQ_XCOMP_PERM), ul(XFEATURE_XTILEDATA)) == 0:
        return "granted"
    return errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
