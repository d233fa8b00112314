"""``hydra/launcher=local_processes``: a sweep as local processes, at most ``max_parallel`` at a time.

It writes ``sweep.json`` (scheduler ``local``, job id = the job's process id, ``launcher_pid``) and waits,
showing the sweep's progress meanwhile (:class:`pipeline.results.watch.SweepView`). The flow is
:class:`pipeline.launch.launcher.SweepLauncher`'s; the slot window is :class:`pipeline.launch.local.LocalBackend`.
"""

from __future__ import annotations

from pipeline.launch.launcher import SweepLauncher


class LocalProcessesLauncher(SweepLauncher):
    backend_name = "local"
