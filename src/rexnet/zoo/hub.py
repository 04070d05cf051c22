"""Weights from the Hugging Face hub, through ``huggingface_hub`` and its cache.

The cache is the ecosystem's (``HF_HUB_CACHE``, else ``HF_HOME/hub``, else ``~/.cache/huggingface/hub``),
read when a file is asked for, so timm, transformers and rexnet share one copy. ``HF_HUB_OFFLINE=1``
never touches the network. A download happens only when a caller asks for pretrained weights.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .._env import env_str
from ..errors import CheckpointError, InputError

__all__ = ["WEIGHTS_NAME", "CONFIG_NAME", "hub_cache_dir", "hub_offline", "split_repo_id", "hub_file", "hub_folder"]

_log = logging.getLogger(__name__)

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def hub_cache_dir() -> Path:
    """The hub cache folder ``huggingface_hub`` uses: ``HF_HUB_CACHE``, else ``HF_HOME/hub``, else its default."""
    cache = env_str("HF_HUB_CACHE") or env_str("HUGGINGFACE_HUB_CACHE")
    if cache:
        return Path(cache).expanduser()
    home = env_str("HF_HOME")
    if home:
        return Path(home).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) forbids the network."""
    value = env_str("HF_HUB_OFFLINE") or env_str("TRANSFORMERS_OFFLINE") or ""
    return value.upper() in ("1", "ON", "YES", "TRUE")


def split_repo_id(repo: str) -> tuple[str, str | None]:
    """``org/name@rev`` -> ``("org/name", "rev")``; ``org/name`` -> ``("org/name", None)``.

    Raises:
        InputError: Not of the form ``org/name``.
    """
    repo_id, _, revision = repo.partition("@")
    parts = repo_id.split("/")
    if len(parts) != 2 or not all(parts):
        raise InputError(f"hub repo must be 'org/name' or 'org/name@revision', got {repo!r}")
    return repo_id, revision or None


def _cache_hint(repo_id: str, filename: str, revision: str | None, cache: Path) -> str:
    folder = cache / f"models--{repo_id.replace('/', '--')}"
    return (
        f"put {filename} of https://huggingface.co/{repo_id} in {folder}/snapshots/<commit>/{filename} "
        f"(with {folder}/refs/{revision or 'main'} holding <commit>), e.g. by running "
        f"`huggingface-cli download {repo_id} {filename}{f' --revision {revision}' if revision else ''}` "
        "on a machine that is online, or pass a local weights file instead"
    )


def hub_file(repo: str, filename: str = WEIGHTS_NAME) -> Path:
    """The local path of ``filename`` of hub repo ``repo`` (``org/name[@rev]``): from the cache, downloaded if online.

    Raises:
        CheckpointError: The file is neither cached nor downloadable (offline, no network, no such
            repo or file); the message names the repo, the file and the cache path to put it in.
    """
    repo_id, revision = split_repo_id(repo)
    cache = hub_cache_dir()
    try:
        import huggingface_hub as hub
        from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError, RepositoryNotFoundError
    except ImportError:  # an optional dependency: name it and the way around it
        raise InputError(
            f"loading {filename} of {repo_id} from the Hugging Face hub needs huggingface_hub "
            "(pip install huggingface_hub); or pass a local weights file"
        ) from None
    if hub_offline():
        # the cache alone, read from disk: hf_hub_download still asks the hub for other things (its user
        # agent registry) when the variable was set after huggingface_hub was imported
        found = hub.try_to_load_from_cache(repo_id, filename, cache_dir=cache, revision=revision)
        if isinstance(found, str):
            return Path(found)
        raise CheckpointError(
            f"{filename} of hub repo {repo_id}{f'@{revision}' if revision else ''} is not in the cache {cache} "
            f"and HF_HUB_OFFLINE is set: {_cache_hint(repo_id, filename, revision, cache)}"
        )
    try:
        path = hub.hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache)
    except LocalEntryNotFoundError:
        raise CheckpointError(
            f"{filename} of hub repo {repo_id}{f'@{revision}' if revision else ''} is not in the cache "
            f"{cache} and the hub cannot be reached: {_cache_hint(repo_id, filename, revision, cache)}"
        ) from None
    except (RepositoryNotFoundError, EntryNotFoundError) as e:
        raise CheckpointError(f"hub repo {repo_id}: no {filename} there ({type(e).__name__})") from None
    except (OSError, ValueError) as e:  # network failures, a bad revision name
        raise CheckpointError(
            f"cannot fetch {filename} of hub repo {repo_id} ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
            f"{_cache_hint(repo_id, filename, revision, cache)}"
        ) from None
    _log.info("%s of %s: %s", filename, repo_id, path)
    return Path(path)


def hub_folder(repo: str) -> Path:
    """The cached snapshot folder of hub repo ``repo`` holding its ``config.json`` and ``model.safetensors``.

    Raises:
        CheckpointError: See :func:`hub_file`.
    """
    config = hub_file(repo, CONFIG_NAME)
    weights = hub_file(repo, WEIGHTS_NAME)
    if weights.parent != config.parent:  # two revisions raced; the folder must be one snapshot
        raise CheckpointError(f"hub repo {repo}: config.json and model.safetensors come from different snapshots")
    return config.parent
