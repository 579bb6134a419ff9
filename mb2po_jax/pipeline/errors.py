"""The pipeline's refusals: printed by the command lines without a traceback."""


class UsageError(ValueError):
    """A config or command-line mistake, naming the field, the value and the fix."""


class ResourceError(UsageError):
    """A run refused before training because this machine cannot hold it
    (model buffers past memory, checkpoints past the disk). Another machine,
    or the fix the message names, can run the same config."""
