"""The toolkit's exceptions: every bad input raises a subclass of `FeatureBiasError`.

Each also derives from the built-in exception a caller would expect (`ValueError`,
`RuntimeError`, ...), so generic handlers keep working.
"""


class FeatureBiasError(Exception):
    """Base class of every error the toolkit raises on purpose."""


class ShapeError(FeatureBiasError, ValueError):
    """A tensor has the wrong rank, width or length."""


class DTypeError(FeatureBiasError, TypeError):
    """A tensor has a dtype the function cannot use."""


class NonFiniteError(FeatureBiasError, ValueError):
    """A tensor holds NaN or infinite values."""


class RangeError(FeatureBiasError, ValueError):
    """Values lie outside the range a method needs (e.g. pixels outside [0, 1])."""


class LabelError(FeatureBiasError, ValueError):
    """Labels are out of range, of the wrong kind, or too few per class."""


class DeviceError(FeatureBiasError, ValueError):
    """Tensors that must share a device do not."""


class ConfigError(FeatureBiasError, ValueError):
    """An option has a value outside what the function accepts."""


class NotFittedError(FeatureBiasError, RuntimeError):
    """An object was used before it saw enough data."""


class FormatError(FeatureBiasError, ValueError):
    """A saved file is corrupted, of an unknown format version, or not ours."""


class SiteError(FeatureBiasError, KeyError):
    """A site name does not exist in the model."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
