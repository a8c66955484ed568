"""The model registry: names, weight tags and their pretrained configs.

A model family registers its LightningModule class under one or more public names::

    @register_model("safnet_s", paper=..., weights=[WeightTag("kalantari17", ...)], variant="s")
    class SAFNetModule(HDRModule): ...

Keyword arguments beyond ``paper``/``weights``/``description`` are the constructor defaults
of that name (one class can back several names). ``hdrzoo.hub`` resolves names and files;
nothing here touches the network.
"""

from __future__ import annotations

import fnmatch
from dataclasses import asdict, dataclass, field
from typing import Any

from hdrzoo.errors import ModelError

__all__ = [
    "WeightTag",
    "ModelEntry",
    "register_model",
    "get_entry",
    "registered_names",
    "model_name_of",
]


@dataclass(frozen=True)
class WeightTag:
    """One published set of weights for a registered model (``name.tag``).

    Attributes:
        tag: short name, e.g. ``"kalantari17"``; the first tag of a model is its default.
        hub_id: Hugging Face Hub repository ``org/name`` holding ``config.json`` +
            ``model.safetensors``; ``None`` when the weights are not published on the Hub.
        revision: the pinned Hub revision (commit hash or tag).
        licence: the licence of the *weights* (may differ from the code's).
        source: where the original weights come from (e.g. the authors' file name / URL),
            so users can fetch and convert them themselves.
        trained_on: dataset the weights were trained on.
        conventions: input conventions the weights expect: ``gamma``, ``channel_order``,
            ``divisor`` (16-bit), ``frames``, ``ref_index``, ``size_multiple``, sampler settings.
        metrics: metrics reported for these weights (``{"kalantari17": {"psnr_mu": ...}}``),
            marked as reported by the paper or measured by us in ``notes``.
        notes: free text shown in model cards and `hdrzoo models`.
    """

    tag: str
    hub_id: str | None = None
    revision: str = "main"
    licence: str = ""
    source: str = ""
    trained_on: str = ""
    conventions: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The tag's fields as a JSON-able dict."""
        return asdict(self)


@dataclass
class ModelEntry:
    """A registered public model name."""

    name: str
    module_cls: type
    kwargs: dict[str, Any]
    paper: str = ""
    description: str = ""
    weights: dict[str, WeightTag] = field(default_factory=dict)

    @property
    def default_tag(self) -> WeightTag | None:
        """The tag ``pretrained=True`` loads (the first registered), or None when none is published."""
        return next(iter(self.weights.values()), None)

    def tag(self, tag: str) -> WeightTag:
        """The weight tag named ``tag`` (e.g. ``"kalantari17"``); a ``ModelError`` lists the known ones."""
        if tag not in self.weights:
            known = ", ".join(f"{self.name}.{t}" for t in self.weights) or "none"
            raise ModelError(f"model {self.name!r} has no weight tag {tag!r}; known tags: {known}")
        return self.weights[tag]

    def build(self, **overrides: Any):
        """Instantiate the LightningModule with this name's defaults and ``overrides``."""
        kwargs = {**self.kwargs, **overrides}
        try:
            return self.module_cls(**kwargs)
        except TypeError as err:
            raise ModelError(
                f"model {self.name!r} does not accept these arguments {sorted(overrides)}: {err}"
            ) from err


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(
    name: str,
    *,
    paper: str = "",
    description: str = "",
    weights: list[WeightTag] | tuple[WeightTag, ...] = (),
    **kwargs: Any,
):
    """Class decorator registering a LightningModule under the public ``name``."""

    tags = [w.tag for w in weights]
    if len(set(tags)) != len(tags):
        raise ModelError(f"model {name!r}: weight tags must be unique, got {tags}")

    def decorator(cls: type) -> type:
        # Re-registering the same class (a re-imported module) replaces the entry.
        if name in _REGISTRY and _REGISTRY[name].module_cls is not cls:
            raise ModelError(
                f"model name {name!r} is registered twice "
                f"({_REGISTRY[name].module_cls.__qualname__} and {cls.__qualname__})"
            )
        first_doc_line = next(iter((cls.__doc__ or "").strip().splitlines()), "")
        _REGISTRY[name] = ModelEntry(
            name=name,
            module_cls=cls,
            kwargs=dict(kwargs),
            paper=paper,
            description=description or first_doc_line,
            weights={w.tag: w for w in weights},
        )
        return cls

    return decorator


def registered_names(pattern: str | None = None) -> list[str]:
    """Sorted names of the registered models, optionally filtered by a glob ``pattern`` (``"safnet*"``)."""
    names = sorted(_REGISTRY)
    if pattern:
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    return names


def get_entry(name: str) -> ModelEntry:
    """The :class:`ModelEntry` registered as ``name``; a ``ModelError`` lists the available names."""
    if name not in _REGISTRY:
        raise ModelError(
            f"unknown model {name!r}; available: {', '.join(sorted(_REGISTRY))} (see `hdrzoo models`)"
        )
    return _REGISTRY[name]


def model_name_of(module: Any) -> str:
    """The registry name of a module instance (``safnet`` vs ``safnet_s`` told apart by hyper-parameters)."""
    explicit = getattr(module, "registry_name", None)
    if explicit:
        return explicit
    hparams = dict(getattr(module, "hparams", {}))
    matches = [
        entry
        for entry in (_REGISTRY[name] for name in registered_names())
        if type(module) is entry.module_cls
        and all(hparams.get(k, v) == v for k, v in entry.kwargs.items())
    ]
    if not matches:
        raise ModelError(
            f"{type(module).__name__} is not a registered hdrzoo model; register it with "
            "@register_model or build it with hdrzoo.hub.create_model"
        )
    # A name with no defaults matches every instance of its class; the name whose defaults
    # pin the most hyper-parameters describes the instance best (safnet_s over safnet).
    return max(matches, key=lambda entry: len(entry.kwargs)).name
