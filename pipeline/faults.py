"""Fault injection for the reliability tests: ``PIPELINE_FAULTS=point:n[,point:sleep=S,...]``.

``point:n``: at the n-th time the process passes ``point`` it SIGKILLs itself (a real kill: no handler, no
cleanup), e.g. ``checkpoint_write:2`` dies halfway through writing the second checkpoint and
``after_checkpoint:1`` right after the first one is complete.
``point:sleep=S``: every pass through ``point`` takes S seconds longer (a slow disk), e.g.
``checkpoint_write:sleep=3`` keeps each checkpoint half written for 3 s, so a test can signal the job then.

Points: ``checkpoint_write`` (the new copy of checkpoints/last half written), ``after_checkpoint``, and
``write_<file name>`` (``pipeline.atomic``: the temp file of ``metrics.json``, ``run_info.json``, ... half
written; for ``metrics.jsonl`` half of the appended line written).
Unset (always, outside tests) it costs one dict lookup.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter

_hits: Counter[str] = Counter()


def _plan() -> dict[str, str]:
    spec = os.environ.get("PIPELINE_FAULTS", "")
    out = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        point, _, n = item.partition(":")
        out[point] = n or "1"
    return out


def planned(point: str) -> bool:
    """True if ``PIPELINE_FAULTS`` names ``point`` (so a writer can split its write around ``hit``)."""
    return "PIPELINE_FAULTS" in os.environ and point in _plan()


def hit(point: str) -> None:
    if "PIPELINE_FAULTS" not in os.environ:
        return
    action = _plan().get(point)
    if action is None:
        return
    if action.startswith("sleep="):
        time.sleep(float(action[len("sleep="):]))
        return
    _hits[point] += 1
    if _hits[point] == int(action):
        os.kill(os.getpid(), signal.SIGKILL)
