"""Errors about a user's settings, worded by each front end (a module of its own so
that every core module, :mod:`.backend` included, can raise them without an import cycle;
:mod:`._checks` re-exports them)."""

from __future__ import annotations

from collections.abc import Mapping
from string import Template


class SettingError(ValueError):
    """A ``ValueError`` about a user's settings that each front end words its own way.

    The message is a :class:`string.Template` whose ``$key`` placeholders name the
    settings; ``str(exc)`` uses the Python API's words given as keywords, and
    :meth:`worded` a front end's (a widget's labels, the command line's options)::

        SettingError("set $fallback_thickness", fallback_thickness="fallback_thickness=<nm>")
    """

    def __init__(self, template: str, **api_words: str):
        self.template = Template(template)
        self.api_words = api_words
        super().__init__(self.template.safe_substitute(api_words))

    def worded(self, words: Mapping[str, str]) -> str:
        """The message with ``words`` for the settings they name (API words for the rest)."""
        return self.template.safe_substitute({**self.api_words,
                                         **{k: v for k, v in words.items() if k in self.api_words}})


def in_words(exc: BaseException, words: Mapping[str, str]) -> str:
    """An exception's message for a front end: :meth:`SettingError.worded`, else ``str``."""
    return exc.worded(words) if isinstance(exc, SettingError) else str(exc)
