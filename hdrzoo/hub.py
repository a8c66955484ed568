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
import sys
import warnings
from collections.abc import Sequence
from importlib import import_module
from pathlib import Path
from typing import Any

import torch

from hdrzoo.errors import HDRZooError, ModelError, WeightsError
from hdrzoo.models.registry import ModelEntry, WeightTag, get_entry, model_name_of, registered_names

__all__ = [
    "WEIGHTS_FORMAT",
    "create_model",
    "export",
    "list_models",
    "load",
    "load_weights_into",
    "model_name_of",
    "read_weights_file",
    "state_dict_problems",
]

WEIGHTS_FORMAT = "hdrzoo-weights-v1"
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"

# Model families: importing them fills the registry (timm-style, one file per family).
_MODEL_MODULES = (
    "hdrzoo.models.classic",
    "hdrzoo.models.safnet",
    "hdrzoo.models.flexhdr",
    "hdrzoo.models.lfdiff",
    "hdrzoo.models.sthdr",
)
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
    name_or_uri: str | os.PathLike,
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
            or a weights URI / path (then the model is read from its ``config.json`` or
            checkpoint; a ``.safetensors`` or ``.pth`` file needs the name instead).
        weights: where the weights come from (module docstring); ``None`` with
            ``pretrained=False`` gives random weights.
        pretrained: load the default (or the named) tag's published weights from the Hub.
        device: move the model there (default: stay on CPU).
        strict: missing or unexpected tensors are an error; ``False`` warns and loads the rest.
        cache_dir: Hub cache folder (default: the Hugging Face cache).
        **overrides: constructor arguments that replace the stored ones (e.g. sampler settings).

    Examples:
        >>> model = load("classic")
        >>> model.frames is None
        True
    """
    name_or_uri = os.fspath(name_or_uri)
    source = os.fspath(weights) if weights is not None else None
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
    if tag is not None and weights is None:
        module.weight_tag = tag.tag
    return _finish(module, device)


def _has_no_parameters(entry: ModelEntry) -> bool:
    return sum(p.numel() for p in entry.build().parameters()) == 0


def _finish(module, device):
    if device is not None:
        try:
            module = module.to(device)
        except (RuntimeError, AssertionError, ValueError) as err:
            # torch raises AssertionError for "not compiled with CUDA", RuntimeError for bad names
            raise ModelError(
                f"device={device!r} is not usable here ({err}); pass device='cpu' or a device torch "
                "can see (torch.cuda.is_available())"
            ) from err
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
        try:
            return _load_folder(name, folder, strict, overrides, origin=source)
        except _DamagedFile as err:
            # hf_hub_download does not check plain-HTTP downloads against their hash, so a
            # damaged transfer sits in the cache under its genuine name; drop it, or every later
            # load (offline ones included) would fail the same way.
            _evict_cached_file(err.path)
            raise WeightsError(
                f"{err} The damaged copy was removed from the Hugging Face cache; load again to "
                "download it afresh."
            ) from err
    if source.startswith("local-dir:"):
        folder = Path(source[len("local-dir:") :]).expanduser()
        return _load_folder(name, folder, strict, overrides, origin=source)

    path = _existing_file(source)
    if path.suffix.lower() == ".ckpt":
        return _load_lightning_checkpoint(name, path, strict, overrides)
    if name is None:
        raise ModelError(
            f"{path.name}: say which model these weights belong to, e.g. load('safnet_s', weights={str(path)!r})"
        )
    module = create_model(name, **overrides)
    _load_net_state(module, _read_net_state(module, path), strict, origin=str(path))
    return module


def load_weights_into(
    module: Any,
    source: str | os.PathLike,
    strict: bool = True,
    parts: Sequence[str] | None = None,
) -> None:
    """Load a weights file into an existing module's network (e.g. its ``init_weights``).

    Args:
        module: a LightningModule of the zoo (its network is ``module.net``).
        source: a ``.safetensors`` network state dict, a Lightning ``.ckpt`` (its ``net.``
            tensors) or a foreign checkpoint (``.pth`` / ``.pt``) the module converts.
        strict: missing or unexpected tensors are an error; ``False`` warns and loads the rest.
        parts: names of submodules of ``module.net`` (e.g. ``("align", "dhrnet")``) to load,
            each from the file's tensors under the same name; the file's other tensors are
            ignored, the network's other submodules keep their weights. This is how a
            training stage starts from the parts it shares with an earlier stage's
            network. ``strict`` then applies to each part. ``None``: the whole network.

    Raises:
        WeightsError: the file is missing, unreadable, refused by the safe loader, or its
            tensors do not fit the network (or one of ``parts``).
    """
    path = _existing_file(source)
    state = _read_net_state(module, path)
    if parts is None:
        _load_net_state(module, state, strict, origin=str(path))
        return
    for part in parts:
        target = _submodule(module.net, part, path)
        prefix = f"{part}."
        part_state = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        _load_state(target, part_state, strict, origin=f"{path} ({part!r})")


def _submodule(net: torch.nn.Module, name: str, path: Path) -> torch.nn.Module:
    try:
        return net.get_submodule(name)
    except AttributeError as err:
        raise WeightsError(
            f"{path}: {type(net).__name__} has no part {name!r} to load; its parts are "
            f"{[child for child, _ in net.named_children()]}"
        ) from err


def _existing_file(source: str | os.PathLike) -> Path:
    path = Path(source).expanduser()
    if not path.is_file():
        raise WeightsError(f"weights file {path} does not exist")
    return path


def _read_net_state(module, path: Path) -> dict[str, torch.Tensor]:
    """The tensors of ``module.net`` stored in one file, whatever its kind."""
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        return read_weights_file(path)
    if suffix == ".ckpt":
        return _net_state_of_checkpoint(read_weights_file(path), path)
    return _convert_foreign(module, read_weights_file(path), path)


# ------------------------------------------------------------------ the Hub ------
def _download_hub_folder(spec: str, cache_dir) -> Path:
    """Fetch ``config.json`` and ``model.safetensors`` of one Hub commit; return the snapshot folder.

    Only these two names are ever requested: nothing pickled comes from the network.
    """
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    repo_id, _, revision = spec.partition("@")
    if not re.fullmatch(r"[\w.\-]+/[\w.\-]+", repo_id):
        raise WeightsError(f"'hf-hub:{spec}': expected hf-hub:org/name[@revision]")
    # huggingface_hub reads HF_ENDPOINT and HF_HUB_OFFLINE once, when it is imported; reading
    # them here as well honours a change made later in the same process (notebooks, tests).
    options = {
        "cache_dir": cache_dir,
        "endpoint": os.environ.get("HF_ENDPOINT", "").rstrip("/") or None,
        "local_files_only": _env_flag("HF_HUB_OFFLINE"),
    }
    folder = None
    for filename in (CONFIG_NAME, WEIGHTS_NAME):
        try:
            path = Path(hf_hub_download(repo_id, filename, revision=revision or None, **options))
        except LocalEntryNotFoundError as err:
            raise WeightsError(
                f"hf-hub:{spec}: {filename} is not in the local cache and the Hub cannot be reached "
                "(offline, or HF_HUB_OFFLINE=1). Connect once to download it, or copy the folder and "
                "use weights='local-dir:PATH'."
            ) from err
        except _download_errors() as err:
            raise WeightsError(f"hf-hub:{spec}: could not download {filename}: {err}") from err
        if folder is None:
            # Pin the weights to the commit the config came from: a branch moving between the
            # two requests must not pair one commit's config with another's weights.
            folder, revision = path.parent, path.parent.name
    return folder


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().upper() in ("1", "ON", "YES", "TRUE")


def _download_errors() -> tuple[type[BaseException], ...]:
    """What ``hf_hub_download`` raises when a transfer fails.

    Its own HTTP errors and ``OSError`` (size checks, disk, ``requests``' errors) and
    ``ValueError`` (bad revision), plus the errors of the HTTP library it runs on, which are
    not ``OSError`` for ``httpx``/``httpx2`` (a connection dropped mid-file).
    """
    from huggingface_hub.errors import HfHubHTTPError

    kinds: list[type[BaseException]] = [HfHubHTTPError, OSError, ValueError]
    for library in ("httpx2", "httpx"):
        module = sys.modules.get(library)
        if module is not None and isinstance(getattr(module, "HTTPError", None), type):
            kinds.append(module.HTTPError)
    return tuple(kinds)


def _evict_cached_file(path: Path) -> None:
    """Remove a Hub snapshot file and the cache blob it links to (best effort: the cache may be read-only)."""
    try:
        blob = path.resolve()
        path.unlink(missing_ok=True)
        blob.unlink(missing_ok=True)
    except OSError:
        pass


# ---------------------------------------------------------- weights folders ------
class _DamagedFile(WeightsError):
    """A file whose bytes are damaged (bad JSON, checksum mismatch), as opposed to wrong content."""

    def __init__(self, message: str, path: Path) -> None:
        super().__init__(message)
        self.path = path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_weights_config(folder: Path) -> dict[str, Any]:
    """Read and check a weights folder's ``config.json``.

    Raises:
        WeightsError: the file is missing, unreadable, not JSON, or lacks the fields
            ``format``, ``model``, ``hparams`` and ``sha256``.
    """
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise WeightsError(
            f"{folder} has no {CONFIG_NAME}; it is not a folder written by `hdrzoo export`"
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as err:
        # ValueError covers JSONDecodeError and over-long integers; RecursionError deep nesting.
        raise _DamagedFile(
            f"{path} is not valid JSON ({type(err).__name__}: {str(err)[:200]}); re-export or "
            "re-download it",
            path,
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
    if actual != config["sha256"].lower():
        raise _DamagedFile(
            f"{origin}: {WEIGHTS_NAME} is corrupted or truncated (sha256 {actual[:12]}... but "
            f"config.json says {config['sha256'][:12]}...); nothing was loaded.",
            weights_path,
        )
    model_name = config["model"]
    if name is not None and name.partition(".")[0] != model_name:
        raise ModelError(f"{origin} holds weights for {model_name!r}, not {name!r}")
    module = _build_stored(model_name, config["hparams"], overrides, origin)
    _load_net_state(module, read_weights_file(weights_path), strict, origin=origin)
    module.weights_config = config
    return module


def _build_stored(model_name: str, hparams: dict[str, Any], overrides: dict[str, Any], origin: str):
    """Build ``model_name`` from hyper-parameters stored in a file (untrusted) plus the caller's overrides."""
    kwargs = {k: v for k, v in hparams.items() if not k.startswith("_")}
    try:
        return create_model(model_name, **{**kwargs, **overrides})
    except HDRZooError:
        raise
    except Exception as err:  # a constructor fed bad values can raise anything
        raise WeightsError(
            f"{origin}: the stored hyper-parameters {_short(kwargs)} do not build {model_name!r} "
            f"({type(err).__name__}: {err}); re-export the weights or pass the right values as overrides"
        ) from err


def _short(value: Any, limit: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


# ------------------------------------------------------------- single files ------
def read_weights_file(path: str | os.PathLike) -> Any:
    """The one reader of weight files in hdrzoo; nothing in a file can run code.

    ``.safetensors`` files are parsed by safetensors (tensors only); anything else is read
    with ``torch.load(weights_only=True)``, whose unpickler builds tensors and plain
    containers and refuses every other object. Every weights file the library opens (Hub
    folders, ``hdrzoo.load``, a model's ``init_weights``) goes through here.

    Args:
        path: the file.

    Returns:
        ``{name: tensor}`` on the CPU for safetensors; otherwise what the file holds
        (a state dict, a Lightning checkpoint dict, ...), its tensors on the CPU.

    Raises:
        WeightsError: the file is unreadable, damaged, or holds something other than
            tensors and plain containers.
    """
    path = Path(path)
    if path.suffix.lower() == ".safetensors":
        return _read_safetensors(path)
    return _torch_load_safely(path)


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


def _convert_foreign(module, raw: Any, path: Path) -> dict[str, torch.Tensor]:
    convert = getattr(module, "convert_foreign_weights", None)
    if convert is None:
        raise WeightsError(
            f"{path}: {type(module).__name__} cannot convert foreign checkpoints; pass a .safetensors, a "
            "Lightning .ckpt or an `hdrzoo export` folder"
        )
    try:
        return convert(raw, path)
    except HDRZooError:
        raise
    except Exception as err:  # the file's content is arbitrary: a converter may trip anywhere
        raise WeightsError(
            f"{path}: not a checkpoint {type(module).__name__} can convert ({type(err).__name__}: {err})"
        ) from err


def _check_lightning_checkpoint(ckpt: Any, path: Path) -> dict[str, Any]:
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise WeightsError(f"{path} is not a Lightning checkpoint (no 'state_dict')")
    return ckpt


def _net_state_of_checkpoint(ckpt: Any, path: Path) -> dict[str, torch.Tensor]:
    state = _check_lightning_checkpoint(ckpt, path)["state_dict"]
    return {k[len("net.") :]: v for k, v in state.items() if k.startswith("net.")}


def _load_lightning_checkpoint(
    name: str | None, path: Path, strict: bool, overrides: dict[str, Any]
):
    ckpt = _check_lightning_checkpoint(read_weights_file(path), path)
    meta = ckpt.get("hdrzoo")
    stored_name = meta.get("model") if isinstance(meta, dict) else None
    model_name = stored_name if isinstance(stored_name, str) else None
    model_name = model_name or (name.partition(".")[0] if name else None)
    if model_name is None:
        raise ModelError(
            f"{path}: the checkpoint does not say which model it is; call load('<model>', weights=...)"
        )
    if name is not None and name.partition(".")[0] != model_name:
        raise ModelError(f"{path} holds a {model_name!r} checkpoint, not {name!r}")
    hparams = ckpt.get("hyper_parameters") or {}
    if not isinstance(hparams, dict):
        raise WeightsError(f"{path}: 'hyper_parameters' is not a dict; not a Lightning checkpoint")
    # LightningCLI adds '_instantiator' and '_class_path'; they are not constructor arguments.
    module = _build_stored(model_name, hparams, overrides, str(path))
    _load_net_state(module, _net_state_of_checkpoint(ckpt, path), strict, origin=str(path))
    return module


def state_dict_problems(
    own: dict[str, torch.Tensor], given: dict[str, torch.Tensor], limit: int | None = 5
) -> tuple[list[str], bool]:
    """Compare a state dict with a network's own: ``(problems, shapes_differ)``.

    ``problems`` lists missing keys, unexpected keys and shape mismatches (the first ``limit``
    of each; ``None``: all) as readable phrases; ``shapes_differ`` is true when a shared key has another shape,
    which no ``strict=False`` can load.
    """
    missing = sorted(set(own) - set(given))
    unexpected = sorted(set(given) - set(own))
    mismatched = sorted(
        k for k in set(own) & set(given) if tuple(own[k].shape) != tuple(given[k].shape)
    )
    problems = []
    if missing:
        problems.append(f"missing {len(missing)}: {missing[:limit]}")
    if unexpected:
        problems.append(f"unexpected {len(unexpected)}: {unexpected[:limit]}")
    if mismatched:
        problems.append(
            "shape mismatch: "
            + ", ".join(
                f"{k} {tuple(given[k].shape)} vs {tuple(own[k].shape)}" for k in mismatched[:limit]
            )
        )
    return problems, bool(mismatched)


def _load_net_state(module, state: dict[str, torch.Tensor], strict: bool, origin: str) -> None:
    _load_state(module.net, state, strict, origin)


def _load_state(
    net: torch.nn.Module, state: dict[str, torch.Tensor], strict: bool, origin: str
) -> None:
    problems, shapes_differ = state_dict_problems(net.state_dict(), state)
    if shapes_differ or (strict and problems):
        raise WeightsError(
            f"{origin} does not fit {type(net).__name__} ({'; '.join(problems)}). Check the model name and "
            "variant, or pass strict=False to load the tensors that match."
        )
    if problems:
        warnings.warn(f"{origin}: loaded with strict=False ({'; '.join(problems)})", stacklevel=4)
    net.load_state_dict(state, strict=strict)


# ------------------------------------------------------------------ export -------
def export(source: Any, out_dir: str | os.PathLike, tag: str | None = None) -> Path:
    """Write ``config.json``, ``model.safetensors`` and a model card ``README.md`` to ``out_dir``.

    Args:
        source: a LightningModule of the zoo, or a path to a Lightning ``.ckpt`` (any weights
            source :func:`load` can read without a model name also works).
        out_dir: the folder to write (created if needed); ready for ``hf upload``.
        tag: weight tag name recorded in the config (default: the tag ``source`` was loaded with).

    Returns:
        ``out_dir`` as a ``Path``. ``load("local-dir:OUT_DIR")`` round-trips the network
        bit-exactly.
    """
    from safetensors.torch import save_file

    from hdrzoo.io import atomic_path

    module = load(str(source)) if isinstance(source, (str, os.PathLike)) else source
    if not hasattr(module, "net"):
        raise ModelError(
            f"export: {type(module).__name__} is not a model of the zoo; pass a module from "
            "hdrzoo.load / create_model or a Lightning .ckpt path"
        )
    tag = tag or getattr(module, "weight_tag", None)
    name = model_name_of(module)
    entry = get_entry(name)
    hparams = _json_hparams(module, name)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise WeightsError(f"cannot create export folder {out}: {err.strerror}") from err

    # clone(): safetensors refuses tensors sharing storage (tied weights, views).
    state = {k: v.detach().cpu().clone().contiguous() for k, v in module.net.state_dict().items()}
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
