"""Error types that carry a message meant for the person running the pipeline."""


class GendaError(Exception):
    """Base class: the message is shown to the user as-is, without a traceback."""


class ConfigError(GendaError, ValueError):
    """A params.yaml key is unknown, mistyped, of the wrong type or out of range."""


class DataError(GendaError, ValueError):
    """Input data is missing or malformed; the message names the offending file."""
