"""Training losses shared by the models."""

from hdrzoo.losses.census import CensusLoss
from hdrzoo.losses.mulaw import MuLawL1
from hdrzoo.losses.multiscale import MultiScaleMuLawL1
from hdrzoo.losses.perceptual import VGGPerceptual
from hdrzoo.losses.photometric import MaskedPhotometric

__all__ = ["CensusLoss", "MaskedPhotometric", "MuLawL1", "MultiScaleMuLawL1", "VGGPerceptual"]
