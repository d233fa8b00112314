"""Hydra entry point: one fine-tune (``python run.py``) or a sweep (``python run.py -m ...``)."""

from pipeline.cli.run_command_line import check_command_line, reexec_with_malloc_settings

reexec_with_malloc_settings()
check_command_line()  # --help, and one-line errors for unknown keys/options (exit 2)

from collections.abc import Callable  # noqa: E402

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

from pipeline.config import register  # noqa: E402

register()


@hydra.main(version_base="1.3", config_path="configs", config_name="config")
def main(cfg: DictConfig, started: float | None = None,
         on_eval: Callable[[int, dict[str, float]], bool] | None = None) -> float:
    from pipeline.train.entry import run_job

    # set by the launcher: started for the points of a job that runs several, on_eval for a study's trials
    return run_job(cfg, started=started, on_eval=on_eval)


if __name__ == "__main__":
    main()
