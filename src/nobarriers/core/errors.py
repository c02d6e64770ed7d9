"""Errors raised for bad input. Each message names the file, key, cycle or step involved."""


class NoBarriersError(Exception):
    """Base class of every error caused by user input or stored files."""


class ConfigError(NoBarriersError):
    """An invalid workflow or algorithm configuration."""


class FileFormatError(NoBarriersError):
    """A file that is missing, truncated, corrupt or of another kind than expected."""


class DivergenceError(NoBarriersError):
    """A loss became NaN or infinite during training or path optimisation."""


class DeviceError(NoBarriersError):
    """A job cannot get the device it was configured or granted (a GPU it does not see)."""


class AlignmentError(NoBarriersError):
    """A model whose neurons cannot be matched, or a permutation that changes its function."""


class DatasetUnavailable(NoBarriersError):
    """A dataset that is neither on disk nor downloadable (e.g. no network on a compute node)."""
