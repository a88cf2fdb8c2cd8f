"""User-facing errors.

Every error a user can cause (a bad parameter, a bad file) is raised as a :class:`SynthcareError`
whose message names the parameter and what is allowed. The command line prints the message alone,
never a traceback.
"""

from __future__ import annotations


class SynthcareError(ValueError):
    """A problem with the user's input: its message names the parameter and the allowed range."""


class ConfigError(SynthcareError):
    """An invalid or unknown configuration setting."""


class Interrupted(Exception):
    """Work stopped at the user's request (Ctrl-C) after saving what it had; the message says
    how to continue. The command line exits with 130, the shell's status for SIGINT."""
