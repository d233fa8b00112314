"""Fine-tune BERT-family text classifiers as Hydra sweeps on LSF, Slurm or local processes.

Import-light on purpose: the CLI and the Hydra launcher plugin import this package, and every scheduler
job pays its import time, so torch/transformers are imported only inside the modules that train.
"""

__version__ = "0.1.0"
