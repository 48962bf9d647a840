"""genda.runtime.allocator.keep_heap: freed tensor buffers are reused without page faults, numbers unchanged."""
import json
import os
import subprocess
import sys

import pytest
import torch

CHILD = r"""
import json, resource, sys, torch
from genda.runtime.allocator import keep_heap, applied
tuned = keep_heap()
def step():
    # a 64 MiB scratch buffer (above glibc's largest mmap threshold, 32 MiB) and three activations alive at
    # once, then freed: a training step's memory in miniature
    bufs = [torch.empty(n << 20).fill_(1.0) for n in (16, 4, 4, 1)]
    return sum(float(b[0]) for b in bufs)
for _ in range(10):  # the heap settles within 3-8 steps (30 runs: the last growth at step 2, 3 or 7)
    step()
faults = []
for _ in range(8):
    r0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    step()
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - r0)
print(json.dumps({"tuned": tuned, "applied": applied(), "faults_per_step": sorted(faults)[len(faults) // 2]}))
"""

glibc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's (Linux)")


def _child(malloc: str) -> dict:
    env = {**os.environ, "GENDA_MALLOC": malloc}
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


@glibc
def test_keep_heap_removes_the_page_faults_of_reallocated_buffers():
    default, tuned = _child("default"), _child("keep_heap")
    assert default["tuned"] is None and not default["applied"]
    assert tuned["applied"] and tuned["tuned"]["mmap_max"] == 0
    # glibc's default maps the 64 MiB block afresh at every step and the kernel faults in its 16k pages of 4 KiB
    assert default["faults_per_step"] > 10000
    assert tuned["faults_per_step"] < 200


def test_compute_applies_it_on_the_cpu_and_the_environment_records_it():
    from genda.runtime.precision import Compute
    from genda.runtime.records import environment

    Compute({"precision": "fp32"}, torch.device("cpu"))
    from genda.runtime.allocator import applied

    assert environment()["malloc"] == ("keep_heap" if applied() else "default")
    if sys.platform.startswith("linux") and os.environ.get("GENDA_MALLOC") != "default":
        assert applied()
