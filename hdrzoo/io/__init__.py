"""Reading and writing HDR images and brackets.

Codecs come from the field's libraries: OpenEXR for ``.exr`` (float32, exact), OpenCV for
Radiance ``.hdr`` (the decoder the official evaluations use) and for PNG / JPEG, tifffile for
TIFF. Every write is atomic: a temporary file in the target folder, renamed into place.

Bracket layouts (``read_bracket`` detects them, ``write_bracket`` writes them):

========================  ===================================================================
``"kalantari17"``         one folder: 3 x 16-bit ``.tif``, ``exposure.txt``, ``HDRImg.hdr``
``"challenge123"``        sibling folders ``xxx_1/ldr_img_1.tif``, ``xxx_2/ldr_img_2.tif`` +
                          ``exposure.txt`` + ``hdr_img.hdr``, ``xxx_3/ldr_img_3.tif``
``"tel23"``               one folder: >= 2 ``.tif``, one ``.txt`` of EVs, one ``.hdr``/``.exr``
``"ntire"``               ``{id}_short.png``, ``{id}_medium.png``, ``{id}_long.png`` (8-bit),
                          ``{id}_exposures.npy``, optional ``{id}_gt.png`` + ``{id}_alignratio.npy``
``"generic"``             one folder: >= 2 images (tif / png / jpg, 8 or 16 bit) + ``exposure.txt``
                          or EXIF ``ExposureTime``; optional ground truth ``*.hdr`` / ``*.exr``
========================  ===================================================================

All readers follow the conventions of ``DATA.md``: RGB frames (never BGR) as float32 in
[0, 1], 16-bit values divided by ``divisor``, frames in sorted file-name order (NTIRE:
short, medium, long), exposure times ``t = 2 ** (ev - min ev)``.

The package, one job per module:

========================  ===================================================================
``codecs``                decoding and encoding single files: HDR (OpenEXR, Radiance), LDR
                          frames (tifffile, OpenCV), ``.npy``; ``read_hdr``
``exposures``             exposure times from ``exposure.txt``, NTIRE ``.npy`` or EXIF
``layouts``               layout names, ``detect_layout``, ``find_scenes``
``plans``                 which files make one scene of each layout
``readers``               ``read_bracket``
``atomic``                ``atomic_path`` and all-or-nothing writes of several files
``writers``               ``write_hdr``, ``write_image``, ``write_preview``, ``write_bracket``
========================  ===================================================================
"""

# The constants imported `as` themselves were public names of the single-file hdrzoo.io and
# stay importable from here, outside `__all__` as before.
from hdrzoo.io.atomic import atomic_path
from hdrzoo.io.codecs import DEFAULT_DIVISOR, read_hdr
from hdrzoo.io.codecs import HDR_SUFFIXES as HDR_SUFFIXES
from hdrzoo.io.codecs import IMAGE_SUFFIXES as IMAGE_SUFFIXES
from hdrzoo.io.codecs import TIFF_SUFFIXES as TIFF_SUFFIXES
from hdrzoo.io.layouts import LAYOUTS, detect_layout, find_scenes
from hdrzoo.io.layouts import NTIRE_GAMMA as NTIRE_GAMMA
from hdrzoo.io.layouts import SIDECAR as SIDECAR
from hdrzoo.io.readers import read_bracket
from hdrzoo.io.writers import write_bracket, write_hdr, write_image, write_preview

__all__ = [
    "DEFAULT_DIVISOR",
    "LAYOUTS",
    "atomic_path",
    "detect_layout",
    "find_scenes",
    "read_bracket",
    "read_hdr",
    "write_bracket",
    "write_hdr",
    "write_image",
    "write_preview",
]
