"""Exceptions raised by fastseg. Every message names the file or argument and what is wrong."""

from __future__ import annotations


class FastsegError(Exception):
    """Base class of every error fastseg raises on bad input or a failed step."""


class InputError(FastsegError, ValueError):
    """An argument or array is not what the function takes (shape, dtype, range)."""


class ImageReadError(FastsegError, OSError):
    """A file or folder could not be read as a medical image; the message names the path."""


class GeometryMismatchError(FastsegError, ValueError):
    """Two volumes that must share a grid (image and label, prediction and reference) do not."""


class NativeBuildError(FastsegError, RuntimeError):
    """The native module is missing, or lacks the kernel asked for (e.g. CUDA in a CPU build)."""
