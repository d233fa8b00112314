"""Hydra entry point: one fine-tune (``python run.py``) or a sweep (``python run.py -m ...``)."""

from pipeline.cli.run_command_line import check_command_line, reexec_with_malloc_settings

reexec_with_malloc_settings()
check_command_line()  # --help, and one-line errors for unknown keys/options (exit 2)

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from pipeline.config import register  # noqa: E402

register()


@hydra.main(version_base="1.3", config_path="configs", config_name="config")
def main(cfg: DictConfig, started: float | None = None) -> float:
    from pipeline.train.entry import run_job

    return run_job(cfg, started=started)  # started: set by the launcher for the points of a packed job


if __name__ == "__main__":
    main()
