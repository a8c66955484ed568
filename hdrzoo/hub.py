"""Resolving model names and weight files: ``hdrzoo.load``, ``list_models``, ``export``.

Weight sources ``load(..., weights=...)`` understands:

========================  ==========================================================
``hf-hub:org/repo[@rev]``  a Hub folder with ``config.json`` + ``model.safetensors``
                           (``hf_hub_download``: cached, honours ``HF_HUB_OFFLINE``,
                           ``HF_ENDPOINT`` and ``cache_dir``; checksum-verified)
``local-dir:PATH``         the same folder on disk (what ``hdrzoo export`` writes)
``*.safetensors``          a bare network state dict
``*.ckpt``                 a Lightning checkpoint (``weights_only=True``)
``*.pth`` / ``*.pt``       a foreign checkpoint the model converts (e.g. official SAFNet),
                           read with ``weights_only=True``
========================  ==========================================================

Nothing pickled is ever fetched from the network: Hub weights are safetensors only.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from importlib import import_module
from pathlib import Path
from typing import Any

import torch

from hdrzoo.errors import ModelError, WeightsError
from hdrzoo.models.registry import ModelEntry, WeightTag, get_entry, model_name_of, registered_names

__all__ = ["load", "list_models", "create_model", "export", "model_name_of", "WEIGHTS_FORMAT"]

WEIGHTS_FORMAT = "hdrzoo-weights-v1"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

# Model families: importing them fills the registry (timm-style, one file per family).
_MODEL_MODULES = ("hdrzoo.models.classic", "hdrzoo.models.safnet")
_loaded_families = False


def _import_models() -> None:
    global _loaded_families
    if _loaded_families:
        return
    for module in _MODEL_MODULES:
        try:
            import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
    _loaded_families = True


def list_models(pattern: str | None = None, pretrained: bool = False) -> list[str]:
    """Registered model names matching a glob ``pattern``.

    With ``pretrained=True`` the result lists ``name.tag`` for every published weight tag
    (those with a Hub repository) instead.
    """
    _import_models()
    names = registered_names(pattern)
    if not pretrained:
        return names
    return [f"{n}.{t.tag}" for n in names for t in get_entry(n).weights.values() if t.hub_id]


def _split_name(name: str) -> tuple[ModelEntry, WeightTag | None]:
    _import_models()
    base, _, tag = name.partition(".")
    entry = get_entry(base)
    return entry, (entry.tag(tag) if tag else None)


def create_model(name: str, **overrides: Any):
    """Build a registered model with random (or no) weights, in train mode."""
    entry, _ = _split_name(name)
    module = entry.build(**overrides)
    module.registry_name = entry.name
    return module


# ------------------------------------------------------------------ loading ------
def load(
    name_or_uri: str,
    weights: str | os.PathLike | None = None,
    pretrained: bool = False,
    device: str | torch.device | None = None,
    strict: bool = True,
    cache_dir: str | os.PathLike | None = None,
    **overrides: Any,
):
    """Build a model of the zoo and load its weights; returns the LightningModule in eval mode.

    Args:
        name_or_uri: a registry name (``"safnet_s"``), a tagged name (``"safnet_s.kalantari17"``),
            or a weights URI / path (then the model is read from its ``config.json`` or checkpoint).
        weights: where the weights come from (module docstring); ``None`` with
            ``pretrained=False`` gives random weights.
        pretrained: load the default (or the named) tag's published weights from the Hub.
        device: move the model there (default: stay on CPU).
        strict: missing or unexpected tensors are an error; ``False`` warns and loads the rest.
        cache_dir: Hub cache folder (default: the Hugging Face cache).
        **overrides: constructor arguments that replace the stored ones (e.g. sampler settings).

    Example:
        >>> model = load("classic")
        >>> model.frames is None
        True
    """
    source = str(weights) if weights is not None else None
    if _is_weights_uri(name_or_uri):
        if source is not None:
            raise ModelError(
                f"give weights either as the first argument or as weights=, not both ({name_or_uri!r}, {source!r})"
            )
        name, source = None, name_or_uri
    else:
        name = name_or_uri

    tag = None
    if name is not None:
        entry, tag = _split_name(name)
        if source is None and (pretrained or tag is not None):
            tag = tag or entry.default_tag
            if tag is None:
                if _has_no_parameters(entry):
                    return _finish(create_model(entry.name, **overrides), device)
                raise WeightsError(
                    f"{entry.name!r} has no published weights. Train it with "
                    f"`hdrzoo fit --config configs/{entry.name}/synthetic.yaml` (or a dataset config) and "
                    f"load the checkpoint with weights='path/to/last.ckpt', or pass weights= a converted file."
                )
            if not tag.hub_id:
                how = f" Original weights: {tag.source}." if tag.source else ""
                raise WeightsError(
                    f"weights {entry.name}.{tag.tag} are not on the Hugging Face Hub.{how} "
                    f"Download them yourself and pass weights='path/to/file' (licence: {tag.licence or 'see the model card'})."
                )
            source = f"hf-hub:{tag.hub_id}@{tag.revision}"

    if source is None:
        return _finish(create_model(name, **overrides), device)

    module = _load_from_source(
        name, source, strict=strict, cache_dir=cache_dir, overrides=overrides
    )
    if tag is not None:
        module.weight_tag = tag.tag
    return _finish(module, device)


def _has_no_parameters(entry: ModelEntry) -> bool:
    return sum(p.numel() for p in entry.build().parameters()) == 0


def _finish(module, device):
    if device is not None:
        module = module.to(device)
    return module.eval()


def _is_weights_uri(value: str) -> bool:
    return value.startswith(("hf-hub:", "local-dir:")) or Path(value).suffix.lower() in (
        ".safetensors",
        ".ckpt",
        ".pth",
        ".pt",
    )


def _load_from_source(
    name: str | None, source: str, strict: bool, cache_dir, overrides: dict[str, Any]
):
    if source.startswith("hf-hub:"):
        folder = _download_hub_folder(source[len("hf-hub:") :], cache_dir)
        return _load_folder(name, folder, strict, overrides, origin=source)
    if source.startswith("local-dir:"):
        folder = Path(source[len("local-dir:") :]).expanduser()
        return _load_folder(name, folder, strict, overrides, origin=source)

    path = Path(source).expanduser()
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".ckpt":
        return _load_lightning_checkpoint(name, path, strict, overrides)
    if name is None:
        raise ModelError(
            f"{path.name}: say which model these weights belong to, e.g. load('safnet_s', weights={str(path)!r})"
        )
    module = create_model(name, **overrides)
    if suffix == ".safetensors":
        state = _read_safetensors(path)
    else:
        state = _read_foreign(module, path)
    _load_net_state(module, state, strict, origin=str(path))
    return module


def _download_hub_folder(spec: str, cache_dir) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    repo_id, _, revision = spec.partition("@")
    if not re.fullmatch(r"[\w.\-]+/[\w.\-]+", repo_id):
        raise WeightsError(f"'hf-hub:{spec}': expected hf-hub:org/name[@revision]")
    revision = revision or None
    paths = {}
    for filename in (CONFIG_NAME, WEIGHTS_NAME):
        try:
            paths[filename] = Path(
                hf_hub_download(repo_id, filename, revision=revision, cache_dir=cache_dir)
            )
        except LocalEntryNotFoundError as err:
            raise WeightsError(
                f"hf-hub:{spec}: {filename} is not in the local cache and the Hub cannot be reached "
                "(offline, or HF_HUB_OFFLINE=1). Connect once to download it, or copy the folder and "
                "use weights='local-dir:PATH'."
            ) from err
        except (HfHubHTTPError, OSError, ValueError) as err:
            raise WeightsError(f"hf-hub:{spec}: could not download {filename}: {err}") from err
    folder = paths[WEIGHTS_NAME].parent
    if paths[CONFIG_NAME].parent != folder:
        raise WeightsError(f"hf-hub:{spec}: config and weights resolved to different snapshots")
    return folder


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_weights_config(folder: Path) -> dict[str, Any]:
    """Read and check a weights folder's ``config.json``."""
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise WeightsError(
            f"{folder} has no {CONFIG_NAME}; it is not a folder written by `hdrzoo export`"
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WeightsError(
            f"{path} is not valid JSON ({err}); re-export or re-download it"
        ) from err
    if not isinstance(config, dict) or config.get("format") != WEIGHTS_FORMAT:
        raise WeightsError(
            f"{path}: not an hdrzoo weights config (expected format {WEIGHTS_FORMAT!r})"
        )
    for key, kind in (("model", str), ("hparams", dict), ("sha256", str)):
        if not isinstance(config.get(key), kind):
            raise WeightsError(f"{path}: field {key!r} is missing or not a {kind.__name__}")
    return config


def _load_folder(
    name: str | None, folder: Path, strict: bool, overrides: dict[str, Any], origin: str
):
    if not folder.is_dir():
        raise WeightsError(f"{origin}: folder {folder} does not exist")
    config = read_weights_config(folder)
    weights_path = folder / WEIGHTS_NAME
    if not weights_path.is_file():
        raise WeightsError(f"{origin}: {WEIGHTS_NAME} is missing from {folder}")
    actual = _sha256(weights_path)
    if actual != config["sha256"]:
        raise WeightsError(
            f"{origin}: {WEIGHTS_NAME} is corrupted or truncated (sha256 {actual[:12]}... but config.json "
            f"says {config['sha256'][:12]}...); delete the cached copy and download it again"
        )
    model_name = config["model"]
    if name is not None and name.partition(".")[0] != model_name:
        raise ModelError(f"{origin} holds weights for {model_name!r}, not {name!r}")
    module = create_model(model_name, **{**config["hparams"], **overrides})
    _load_net_state(module, _read_safetensors(weights_path), strict, origin=origin)
    module.weights_config = config
    return module


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise WeightsError(
            f"{path} is not a readable safetensors file ({err}); is it truncated?"
        ) from err


def _torch_load_safely(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # pickle errors come in many types; all mean "refused or broken"
        raise WeightsError(
            f"{path} could not be loaded safely with torch.load(weights_only=True): {err}. hdrzoo never "
            "unpickles arbitrary objects; convert trusted files to .safetensors first."
        ) from err


def _read_foreign(module, path: Path) -> dict[str, torch.Tensor]:
    raw = _torch_load_safely(path)
    convert = getattr(module, "convert_foreign_weights", None)
    if convert is None:
        raise WeightsError(
            f"{path}: {type(module).__name__} cannot convert foreign checkpoints; pass a .safetensors, a "
            "Lightning .ckpt or an `hdrzoo export` folder"
        )
    return convert(raw, path)


def _load_lightning_checkpoint(
    name: str | None, path: Path, strict: bool, overrides: dict[str, Any]
):
    ckpt = _torch_load_safely(path)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise WeightsError(f"{path} is not a Lightning checkpoint (no 'state_dict')")
    meta = ckpt.get("hdrzoo", {})
    model_name = meta.get("model") or (name.partition(".")[0] if name else None)
    if model_name is None:
        raise ModelError(
            f"{path}: the checkpoint does not say which model it is; call load('<model>', weights=...)"
        )
    if name is not None and name.partition(".")[0] != model_name:
        raise ModelError(f"{path} holds a {model_name!r} checkpoint, not {name!r}")
    hparams = dict(ckpt.get("hyper_parameters", {}))
    module = create_model(model_name, **{**hparams, **overrides})
    state = {k[len("net.") :]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    _load_net_state(module, state, strict, origin=str(path))
    return module


def _load_net_state(module, state: dict[str, torch.Tensor], strict: bool, origin: str) -> None:
    net = module.net
    own = net.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mismatched = sorted(
        k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape)
    )
    problems = []
    if missing:
        problems.append(f"missing {len(missing)}: {missing[:5]}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)}: {unexpected[:5]}")
    if mismatched:
        problems.append(
            "shape mismatch: "
            + ", ".join(
                f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in mismatched[:5]
            )
        )
    if mismatched or (strict and problems):
        raise WeightsError(
            f"{origin} does not fit {type(net).__name__} ({'; '.join(problems)}). Check the model name and "
            "variant, or pass strict=False to load the tensors that match."
        )
    if problems:
        warnings.warn(f"{origin}: loaded with strict=False ({'; '.join(problems)})", stacklevel=3)
    net.load_state_dict(state, strict=strict)


# ------------------------------------------------------------------ export -------
def export(source: Any, out_dir: str | os.PathLike, tag: str | None = None) -> Path:
    """Write ``config.json``, ``model.safetensors`` and a model card ``README.md`` to ``out_dir``.

    Args:
        source: a LightningModule of the zoo, or a path to a Lightning ``.ckpt``.
        out_dir: the folder to write (created if needed); ready for ``huggingface-cli upload``.
        tag: optional weight tag name recorded in the config.

    ``load("local-dir:OUT_DIR")`` round-trips the network bit-exactly.
    """
    from safetensors.torch import save_file

    from hdrzoo.io import atomic_path

    module = load(str(source)) if isinstance(source, (str, os.PathLike)) else source
    name = model_name_of(module)
    entry = get_entry(name)
    hparams = _json_hparams(module, name)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WeightsError(f"cannot create export folder {out}: {err.strerror}") from err

    state = {k: v.detach().cpu().contiguous() for k, v in module.net.state_dict().items()}
    with atomic_path(out / WEIGHTS_NAME) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "model": name})
    weight_tag = entry.weights.get(tag) if tag else None
    config = {
        "format": WEIGHTS_FORMAT,
        "model": name,
        "hparams": hparams,
        "sha256": _sha256(out / WEIGHTS_NAME),
        "num_parameters": sum(v.numel() for v in module.net.parameters()),
        "tag": tag,
        "licence": weight_tag.licence if weight_tag else "",
        "paper": entry.paper,
        "conventions": {
            "gamma": 2.2,
            "channel_order": "RGB",
            "frames": module.frames,
            "size_multiple": module.size_multiple,
            **(weight_tag.conventions if weight_tag else {}),
        },
        "metrics": weight_tag.metrics if weight_tag else {},
    }
    with atomic_path(out / CONFIG_NAME) as tmp:
        tmp.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    with atomic_path(out / "README.md") as tmp:
        tmp.write_text(_model_card(config, entry), encoding="utf-8")
    return out


def _json_hparams(module, name: str) -> dict[str, Any]:
    hparams = {k: v for k, v in dict(module.hparams).items() if not k.startswith("_")}
    try:
        return json.loads(json.dumps(hparams))
    except TypeError as err:
        raise WeightsError(
            f"{name}: hyper-parameters are not JSON-serialisable ({err}); cannot export"
        ) from err


def _model_card(config: dict[str, Any], entry: ModelEntry) -> str:
    licence = config["licence"] or "not stated; check the training data and code licences"
    lines = [
        "---",
        "library_name: hdrzoo",
        "tags: [hdr, deghosting, multi-exposure, hdrzoo]",
        "---",
        f"# {config['model']}" + (f".{config['tag']}" if config["tag"] else ""),
        "",
        entry.description,
        "",
        f"- Paper: {entry.paper or 'n/a'}",
        f"- Parameters: {config['num_parameters']:,}",
        f"- Weights licence: {licence}",
        f"- Input conventions: {json.dumps(config['conventions'], sort_keys=True)}",
        f"- sha256 of model.safetensors: `{config['sha256']}`",
        "",
        "## Use",
        "",
        "```python",
        "import hdrzoo",
        'model = hdrzoo.load("hf-hub:ORG/REPO")  # or "local-dir:PATH"',
        'hdr = model.merge(hdrzoo.read_bracket("scene_dir"))',
        "```",
        "",
    ]
    if config["metrics"]:
        lines += ["## Metrics", "", "```json", json.dumps(config["metrics"], indent=2), "```", ""]
    return "\n".join(lines)
