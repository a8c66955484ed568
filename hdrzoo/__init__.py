"""hdrzoo: ghost-free HDR from bracketed exposures with state-of-the-art deep models.

Public API::

    import hdrzoo
    bracket = hdrzoo.read_bracket("scene_dir")
    model = hdrzoo.load("classic")
    hdr = model.merge(bracket)          # linear HDR, (3, H, W)
    hdrzoo.write_hdr("out.exr", hdr)
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from hdrzoo.bracket import Bracket
from hdrzoo.errors import HDRZooError

__version__ = "0.1.0"

# Heavy submodules (Lightning, OpenCV, the Hub client) are imported on first use so that
# `import hdrzoo` stays fast.
_LAZY = {
    "load": "hdrzoo.hub",
    "list_models": "hdrzoo.hub",
    "read_bracket": "hdrzoo.io",
    "read_hdr": "hdrzoo.io",
    "write_hdr": "hdrzoo.io",
    "write_preview": "hdrzoo.io",
    "write_bracket": "hdrzoo.io",
    "write_image": "hdrzoo.io",
    "find_scenes": "hdrzoo.io",
    "detect_layout": "hdrzoo.io",
    "merge": "hdrzoo.inference",
}

__all__ = ["Bracket", "HDRZooError", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hdrzoo' has no attribute {name!r}")
