"""Sweeps launched before the payload moved to :mod:`pipeline.launch.payload` pickled their jobs as
``hydra_plugins.pipeline_launchers._payload.SweepJob``: this name keeps those pickles loadable (requeues of
running jobs, ``pipeline rerun``)."""

from pipeline.launch.payload import SweepJob

__all__ = ["SweepJob"]
