"""Keep freed memory in the process, so that the next tensor of the same size reuses it.

glibc's malloc serves blocks above its mmap threshold (128 KiB at first, raised as such blocks
are freed, up to 32 MiB) straight from the kernel and gives them back on free, and gives back
the top of its heap beyond the trim threshold. A network's activation maps are blocks of tens of
MB made and freed thousands of times per image, so each one is faulted in and zero-filled by
the kernel page by page, again and again. Raising both thresholds keeps that memory in the
process (what it saves is measured in docs/performance.md). PyTorch's CPU performance guide reaches the same with jemalloc or
tcmalloc, or with these glibc settings as ``MALLOC_*`` environment variables: a process started
with any of those keeps them untouched.
"""

from __future__ import annotations

import ctypes
import os
import sys

# mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD = 32 * 2**20  # glibc's largest; bigger blocks still come from the kernel
TRIM_THRESHOLD = 2**30  # up to 1 GiB of freed heap stays in the process
TOP_PAD = 256 * 2**20  # grow the heap in steps of 256 MiB (address space only until touched)


def keep_freed_memory() -> bool:
    """Set glibc's thresholds as above; False where there is no glibc or the user chose already."""
    if not sys.platform.startswith("linux") or any(key.startswith("MALLOC_") for key in os.environ):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...)
        return False
    settings = ((_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD), (_M_TOP_PAD, TOP_PAD))
    return all(mallopt(parameter, value) == 1 for parameter, value in settings)
