"""The one error family of hdrzoo.

Every failure a user can cause (bad files, bad arguments, missing weights) raises
:class:`HDRZooError` or one of its subclasses, with a message that names the input and
says what to do about it.
"""

from __future__ import annotations


class HDRZooError(Exception):
    """Base class of every user-facing hdrzoo error."""


class BracketError(HDRZooError, ValueError):
    """A bracket (frames, exposures, reference, ground truth) is malformed."""


class ReadError(HDRZooError, OSError):
    """A file could not be read or decoded, or a folder matches no known layout."""


class WriteError(HDRZooError, OSError):
    """An output could not be written (nothing partial is left behind)."""


class WeightsError(HDRZooError):
    """Weights are missing, corrupted, or do not fit the model."""


class ModelError(HDRZooError, KeyError):
    """An unknown model name or tag, or arguments a model does not accept."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class InputSizeError(HDRZooError, ValueError):
    """An input the model cannot take as given (frame count, size, memory)."""
