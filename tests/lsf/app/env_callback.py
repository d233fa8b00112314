"""A Hydra callback for the launcher tests: the launching process's environment at the start and at the
end of a sweep, written to ``$APP_ENV_SNAPSHOT.{start,end}.json`` (the launch must not change it)."""

import json
import os
from typing import Any

from hydra.experimental.callback import Callback


class EnvSnapshot(Callback):
    def _write(self, when: str) -> None:
        with open(f"{os.environ['APP_ENV_SNAPSHOT']}.{when}.json", "w") as f:
            json.dump(dict(os.environ), f)

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        self._write("start")

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        self._write("end")
