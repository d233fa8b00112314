"""Models: loading a pretrained encoder with a classification head, the opt-in CPU kernels,
prediction from a checkpoint, and prefetching hub models for offline jobs.

Import-light: nothing heavy is imported here."""
