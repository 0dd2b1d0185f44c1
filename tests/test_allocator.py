"""The allocator switch: after ``retain_freed_buffers`` glibc reuses a freed 48 MB tensor instead of mapping
fresh (page-faulting) memory for the next one. Run in a child process: the switch is process-wide."""

from __future__ import annotations

import json
import platform
import subprocess
import sys

import pytest

from tinyact.models.allocator import _preloaded_allocator, allocator_name

CHILD = r"""
import json, resource, sys, torch
from tinyact.models.allocator import allocator_name, release_freed_buffers, retain_freed_buffers

def faults_per_call(calls=6, mib=48):
    out = []
    for _ in range(calls):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        x = torch.empty(mib << 20, dtype=torch.uint8)
        x.fill_(1)  # touch every page
        del x
        out.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return out

result = {"before": allocator_name(), "default": faults_per_call()}
result["name"] = retain_freed_buffers()
result["retain"] = faults_per_call()
release_freed_buffers()
result["after_release"] = faults_per_call(1)
print(json.dumps(result))
"""


def test_allocator_name_matches_the_c_library() -> None:
    preloaded = _preloaded_allocator()
    if preloaded:
        assert allocator_name() == preloaded
    else:
        assert allocator_name().startswith(platform.libc_ver()[0] or "unknown")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc" or _preloaded_allocator() is not None,
                    reason="the switch is for glibc malloc (not under a preloaded jemalloc/tcmalloc)")
def test_retain_reuses_large_buffers_and_release_returns_them() -> None:
    done = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    pages = (48 << 20) // 4096
    assert result["before"] == "glibc" and result["name"] == "glibc-retain"
    # glibc's default: every call maps (and faults in) fresh pages for the whole buffer.
    assert min(result["default"]) > 0.9 * pages, result
    # Retained: the first call grows the heap and the next ones reuse it. (Once in a while glibc places the
    # second buffer in fresh pages, seen only in a full test session: the steady state is what counts.)
    assert sum(faults < 0.05 * pages for faults in result["retain"][1:]) >= 4, result
    # Released: the free memory went back to the OS, so the next buffer faults its pages in again.
    assert result["after_release"][0] > 0.9 * pages, result
