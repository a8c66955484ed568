"""Training losses shared by the models."""

from hdrzoo.losses.census import CensusLoss
from hdrzoo.losses.mulaw import MuLawL1
from hdrzoo.losses.multiscale import MultiScaleMuLawL1
from hdrzoo.losses.perceptual import VGGPerceptual

__all__ = ["CensusLoss", "MuLawL1", "MultiScaleMuLawL1", "VGGPerceptual"]
