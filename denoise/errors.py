"""Errors about the user's input: entry points print them as one line, without a traceback."""


class UserInputError(ValueError):
    """Bad configuration or data: the message names the file, key or value and what was expected."""


class ConfigError(UserInputError):
    pass


class DataError(UserInputError):
    pass
