"""What building a timm member needs besides timm itself: its evaluation transform (timm's, as
an `ImagePreprocessing`, whose repr is stable) and where its weight file is or comes from.

Weights of a timm model published on the Hugging Face hub are looked up, in order, as
``<weights-dir>/<arch>.<tag>.safetensors``, in a folder ``<weights-dir>/<arch>.<tag>/`` (or named
like the hub repository) holding ``model.safetensors`` or ``pytorch_model.bin`` (what
``huggingface-cli download timm/<arch>.<tag> --local-dir <weights-dir>/<arch>.<tag>`` writes),
then in the Hugging Face cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else
``~/.cache/huggingface/hub``), else downloaded into that cache with ``huggingface_hub``. The few
weights timm publishes only by URL go the torch.hub way (`committee_tasks.core.zoo`).
Nothing here imports torch or timm at import time: the zoo lists without them.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

from committee_tasks.core.errors import CommitteeError
from committee_tasks.core.image_preprocessing import INTERPOLATIONS, ImagePreprocessing

# The files of a timm repository on the hub, in the order timm itself prefers them.
HUB_FILES = ("model.safetensors", "pytorch_model.bin")
CROP_MODES = ("center", "squash")  # timm's third, "border" (pad to keep the whole image), is refused


def timm_eval_transform(input_size: Sequence[int], crop_pct: float, crop_mode: str, interpolation: str,
                        mean: Sequence[float], std: Sequence[float]) -> ImagePreprocessing:
    """timm's evaluation transform (``transforms_imagenet_eval``) for a pretrained config: resize
    to ``floor(size / crop_pct)`` (the shorter side for "center", both sides for "squash"), centre
    crop to ``input_size``, scale to 0..1, normalise. On PIL images it gives timm's tensors exactly."""
    height, width = input_size[-2:]
    if crop_mode not in CROP_MODES:
        raise CommitteeError(f"timm crop_mode {crop_mode!r} is not supported (only {list(CROP_MODES)}): its "
                             "letterbox resize and padding are not reproduced here")
    if crop_mode == "center" and height != width:
        raise CommitteeError(f"timm crop_mode 'center' with a non-square input {height}x{width} is not supported "
                             "(timm resizes it keeping the aspect ratio by its own rule)")
    if interpolation not in INTERPOLATIONS:
        raise CommitteeError(f"timm interpolation {interpolation!r} is not one of {list(INTERPOLATIONS)}")
    scaled = (math.floor(height / crop_pct), math.floor(width / crop_pct))
    return ImagePreprocessing(resize=scaled if crop_mode == "squash" else scaled[0], crop=(height, width),
                              interpolation=interpolation, mean=tuple(mean), std=tuple(std))


def hf_hub_cache() -> Path:
    """The Hugging Face hub cache, found as huggingface_hub finds it (read now, not at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME", "~/.cache"), "huggingface")
    return Path(home).expanduser() / "hub"


def _cached_snapshots(repo_id: str) -> list[Path]:
    """The repository's snapshot folders in the cache: the one ``refs/main`` names first."""
    repo = hf_hub_cache() / ("models--" + repo_id.replace("/", "--"))
    snapshots = sorted(p for p in (repo / "snapshots").glob("*") if p.is_dir())
    main = repo / "refs" / "main"
    head = main.read_text().strip() if main.is_file() else None
    return sorted(snapshots, key=lambda p: p.name != head)


def weight_locations(name: str, repo_id: str, files: Sequence[str], weights_dir: Path | None) -> list[Path]:
    """Where the weights of timm model ``name`` (``<arch>.<tag>``) may already be, in the order
    searched after ``<weights-dir>/<name>.safetensors`` (see the module's docstring)."""
    places = []
    if weights_dir is not None:
        for folder in dict.fromkeys((name, repo_id.rsplit("/", 1)[-1])):
            places += [weights_dir / folder / file for file in files]
    for snapshot in _cached_snapshots(repo_id):
        places += [snapshot / file for file in files]
    return places


def hub_unreachable() -> str | None:
    """Why the hub cannot be reached, when that is certain without trying: its host name does not
    resolve and no proxy is set (a machine without a network), where ``hf_hub_download`` would retry
    for about 30 s first. None where it may be reachable."""
    import socket
    from urllib.parse import urlparse

    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None  # the proxy resolves names, not this machine
    host = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname or "huggingface.co"
    try:
        socket.getaddrinfo(host, 443)
    except socket.gaierror as err:
        return f"{host} does not resolve ({err.strerror or err})"
    return None


def download_from_hub(repo_id: str, files: Sequence[str]) -> Path:
    """The first of ``files`` the hub repository has, downloaded into the Hugging Face cache."""
    cache = hf_hub_cache()
    fills = (f"`huggingface-cli download {repo_id}` on a machine with a network, with HF_HOME or HF_HUB_CACHE "
             f"giving this cache ({cache}), fills it; HF_HUB_OFFLINE=1 skips download attempts")
    offline = None if os.environ.get("HF_HUB_OFFLINE") else hub_unreachable()
    if offline:
        raise OSError(f"cannot download {repo_id} into the Hugging Face cache: {offline}. {fills}")
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    for file in files:
        try:
            return Path(hf_hub_download(repo_id, file, cache_dir=cache))
        except EntryNotFoundError as err:
            # not in the repository: try the next file; not in the cache while offline: stop here
            if isinstance(err, LocalEntryNotFoundError) or file == files[-1]:
                first_line = str(err).strip().splitlines()[0][:120] if str(err).strip() else ""
                raise OSError(f"downloading {file} of {repo_id} into the Hugging Face cache {cache} failed "
                              f"({type(err).__name__}: {first_line}). {fills}") from err
    raise CommitteeError(f"no file names given for {repo_id}")
