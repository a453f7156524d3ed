"""Exceptions for problems the user can fix (bad files, bad config, bad arguments).

The CLI prints these as one line naming the file and the fix and exits with status 2; anything else
is a bug and keeps its traceback.
"""


class InputError(ValueError):
    """Bad user input: the message must name the offending file/value and how to fix it."""
