"""The exception types the CLI turns into exit codes: user mistakes (2) and injected faults (17).

The CLI catches ``ConfigError`` and prints its message without a stack trace:
a user who typed a wrong key or an impossible parallel layout needs the message,
not our call stack.
"""


class ConfigError(ValueError):
    """A configuration or input the user can fix; the message says what and where."""


class InjectedFault(RuntimeError):
    """Raised by ``checkpoint.fail_after_step``; the CLI exits with code 17 (tests simulate a killed job).

    A clean exception rather than ``os._exit``: megatron's checkpoint writer keeps a
    multiprocessing manager that only shuts down on a normal exit, and what the
    test needs — the on-disk state after step k and nothing after — is the same.
    """

    exit_code = 17
