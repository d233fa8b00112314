"""One training job: the loop, checkpoints, progress, attempts, run_info, tracking, the GPU check
and what run.py does around ``fit``.

Import-light: nothing heavy is imported here."""
