"""Errors that reach the user as one clear line (CLI) or a dialog (GUI).

Anything raised as a ``WorkbenchError`` is an expected problem with the user's input or
environment: it is shown without a traceback. Anything else is a bug and keeps its traceback
(visible with ``--debug`` / in the GUI's details section).
"""


class WorkbenchError(Exception):
    """A problem the user can fix; ``str(err)`` is the whole message."""


class SpecError(WorkbenchError):
    """A RunSpec (or a CLI/GUI field feeding it) is invalid."""


class ModelLoadError(WorkbenchError):
    """A model file could not be loaded (missing, truncated, wrong format, untrusted pickle...)."""


class InputShapeError(WorkbenchError):
    """The model rejected the inputs it was given."""


class DeviceError(WorkbenchError):
    """The requested device or runtime is not available here."""


class PluginError(WorkbenchError):
    """A plugin chain is invalid, or a plugin failed while applying."""


class VariantsRefused(PluginError):
    """Every variant planned after a baseline is refused for the loaded model (``Plugin.check_model``):
    the baseline worker stops before timing anything, as there would be nothing to compare it with."""


class RunCancelled(WorkbenchError):
    """The user (or a timeout) stopped the run."""


class StoreError(WorkbenchError):
    """The results database cannot be opened, read or written (full disk, read-only, damaged, locked)."""


class ModelRuntimeError(WorkbenchError):
    """The model itself failed while running (out of memory, an error in its own code)."""


class ModelOutputError(WorkbenchError):
    """The model returned something Workbench cannot measure or compare (None, no tensor, a
    shape that changes from call to call)."""


class OutputShapeChanged(ModelOutputError, ValueError):
    """The model's outputs changed shape between calls or through optimization (still a
    ValueError, as this failure was before it had a message for the user)."""
