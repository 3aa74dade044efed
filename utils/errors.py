"""The one exception type whose message is shown to the user as a single line."""


class UserError(Exception):
    """A problem with the user's input or environment; its message says what is wrong and what to do."""
