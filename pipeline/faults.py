"""Fault injection for the reliability tests: ``PIPELINE_FAULTS=point:n[,point:n]``.

At the n-th time the training job passes ``point`` it SIGKILLs itself (a real kill: no handler, no
cleanup), e.g. ``checkpoint_write:2`` dies halfway through writing the second checkpoint and
``after_checkpoint:1`` right after the first one is complete. Unset (always, outside tests) it costs one
dict lookup.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

_hits: Counter[str] = Counter()


def _plan() -> dict[str, int]:
    spec = os.environ.get("PIPELINE_FAULTS", "")
    out = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        point, _, n = item.partition(":")
        out[point] = int(n or 1)
    return out


def hit(point: str) -> None:
    plan = _plan()
    if point not in plan:
        return
    _hits[point] += 1
    if _hits[point] == plan[point]:
        os.kill(os.getpid(), signal.SIGKILL)
