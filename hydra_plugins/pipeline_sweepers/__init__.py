"""Hydra sweeper plugin: ``hydra/sweeper=fast_basic`` (the basic sweeper with O(groups) validation)."""
