"""Errors a user can act on: each message names the file or setting and what to do."""


class TlearnError(Exception):
    """A problem with the user's input or environment; the CLI prints it without a traceback."""


class DataError(TlearnError):
    """The data folder, manifest or images cannot be used as given."""


class WeightsError(TlearnError):
    """Pretrained weights are missing, unreadable or fail their checksum."""
