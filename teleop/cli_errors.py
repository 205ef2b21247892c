"""The command line's user error (reported as one line, exit status 2), shared by every command area."""


class CliError(Exception):
    """A user error: reported as one line, exit status 2."""
