"""The network side of the online check: read a dataset repo's metadata from the hub, nothing else.

Kept apart from the verdict logic so that it stays small enough to trust without a hub to test against: the
parsing of what comes back (:func:`configs_from_card`, :func:`configs_from_viewer`) is pure and tested on
recorded cards; :func:`fetch_metadata` only makes the two calls and maps failures to :class:`HubUnreachable`.
"""

from __future__ import annotations

import os
from typing import Any

from data_catalog.hub_check import ConfigInfo, HubMetadata, HubUnreachable

VIEWER_INFO_URL = "https://datasets-server.huggingface.co/info"


def fetch_metadata(repo_id: str, *, revision: str | None = None, timeout: float = 10.0) -> HubMetadata:
    """Configs, splits, columns, files, licence and commit of a hub dataset; no data is downloaded.

    Raises :class:`HubUnreachable` (one line, no retries) when ``HF_HUB_OFFLINE`` is set or the hub cannot be
    reached; a repo the hub says does not exist comes back as ``exists=False``.
    """
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        raise HubUnreachable(f"HF_HUB_OFFLINE is set, not asking the hub about {repo_id}")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    try:
        info = HfApi().dataset_info(repo_id, revision=revision, timeout=timeout)
    except RepositoryNotFoundError as error:
        # A gated repo exists; its layout is unknown without access, so nothing beyond existence is judged.
        return HubMetadata(repo_id=repo_id, exists=isinstance(error, GatedRepoError))
    except Exception as error:
        if _is_network_error(error):
            raise HubUnreachable(f"{repo_id}: {_first_line(error)}") from None
        raise
    card = info.card_data.to_dict() if info.card_data is not None else {}
    files = [sibling.rfilename for sibling in info.siblings or []]
    metadata = metadata_from_card(repo_id, card, files=files, sha=info.sha)
    if metadata.configs is None:
        metadata = metadata.model_copy(update={"configs": _viewer_configs(repo_id, timeout)})
    return metadata


def metadata_from_card(
    repo_id: str, card: dict[str, Any], *, files: list[str] | None = None, sha: str | None = None
) -> HubMetadata:
    """Metadata of an existing repo from its card's YAML header (as a dict), its file list and commit."""
    configs = configs_from_card(card)
    return HubMetadata(
        repo_id=repo_id,
        exists=True,
        configs=configs,
        files=files,
        license=_license(card.get("license")),
        sha=sha,
    )


def _viewer_configs(repo_id: str, timeout: float) -> dict[str, ConfigInfo] | None:
    """The dataset viewer's config list, for repos whose card lists none; None when the viewer has none."""
    from huggingface_hub.utils import get_session

    try:
        response = get_session().get(VIEWER_INFO_URL, params={"dataset": repo_id}, timeout=timeout)
    except Exception as error:
        if _is_network_error(error):
            raise HubUnreachable(f"{repo_id} (dataset viewer): {_first_line(error)}") from None
        raise
    return configs_from_viewer(response.json()) if response.status_code == 200 else None


def configs_from_card(card: dict[str, Any]) -> dict[str, ConfigInfo] | None:
    """Configs from a dataset card's YAML header: ``configs`` (what loads) and ``dataset_info`` (features).

    None when the card declares neither, e.g. a loading-script repo or a bare folder of files.
    """
    infos = {entry.get("config_name", "default"): entry for entry in _as_list(card.get("dataset_info"))}
    declared = {entry.get("config_name", "default"): entry for entry in _as_list(card.get("configs"))}
    if not infos and not declared:
        return None
    configs = {}
    for name in declared or infos:
        info = infos.get(name, {})
        splits = _card_splits(declared.get(name, {}).get("data_files")) or [
            split["name"] for split in _as_list(info.get("splits"))
        ]
        features = _as_list(info.get("features"))
        columns = [feature["name"] for feature in features if "name" in feature] or None
        configs[name] = ConfigInfo(splits=splits or ["train"], columns=columns)
    return configs


def configs_from_viewer(payload: dict[str, Any]) -> dict[str, ConfigInfo] | None:
    """Configs from the dataset viewer's ``/info`` answer: ``dataset_info`` maps config -> DatasetInfo when asked
    per dataset, and is one DatasetInfo (with ``config_name``) when asked per config."""
    infos = payload.get("dataset_info") or {}
    if "features" in infos or "splits" in infos:
        infos = {infos.get("config_name") or "default": infos}
    if not infos:
        return None
    return {
        name: ConfigInfo(
            splits=list(info.get("splits") or {}), columns=list(info.get("features") or {}) or None
        )
        for name, info in infos.items()
    }


def _card_splits(data_files: Any) -> list[str]:
    """Split names of a ``configs[].data_files`` entry: a list of ``{split, path}``, or plain paths (= train)."""
    if data_files is None:
        return []
    splits = [entry["split"] if isinstance(entry, dict) else "train" for entry in _as_list(data_files)]
    return list(dict.fromkeys(splits)) or ["train"]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _license(value: Any) -> str | None:
    licenses = [str(item) for item in _as_list(value) if item]
    return ", ".join(licenses) or None


def _is_network_error(error: BaseException) -> bool:
    """Offline mode, no route, timeouts and HTTP failures, whichever HTTP library huggingface_hub uses
    (httpx2, httpx or requests): all mean the hub cannot answer now."""
    names = {cls.__name__ for cls in type(error).__mro__}
    return isinstance(error, OSError | TimeoutError) or bool(
        names & {"TransportError", "HTTPError", "RequestException"}
    )


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
