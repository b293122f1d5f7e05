"""The prompt catalogue: the text of every fixed voice prompt, per language, from a TOML file.

Prompts are `str.format` templates; a prompt's placeholders are the same in every language,
which `load_catalogue` checks, so a flow that fills a prompt in Dutch can fill it in English.
"""

from __future__ import annotations

import string
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

from core.errors import BurgernetError, DataError

#: The shipped catalogue, at the top of the source tree.
DEFAULT_CATALOGUE = Path(__file__).resolve().parent.parent / "sounds" / "prompts.toml"

#: Every prompt has its text in each of these languages (the values of `core.models.Language`).
LANGUAGES: tuple[str, ...] = ("nl", "en")


class PromptError(BurgernetError):
    """A prompt was asked for that the catalogue lacks, or without a value it needs."""

    error_id = "prompt_error"


@dataclass(frozen=True)
class Prompt:
    """One prompt: its key, its text per language and the placeholders those texts share."""

    key: str
    texts: Mapping[str, str]
    placeholders: frozenset[str]

    @property
    def is_template(self) -> bool:
        return bool(self.placeholders)


class Catalogue:
    """The prompts of one catalogue file, by key."""

    def __init__(self, prompts: Mapping[str, Prompt], path: Path | None = None) -> None:
        self._prompts = MappingProxyType(dict(prompts))
        self.path = path

    def __contains__(self, key: object) -> bool:
        return key in self._prompts

    def __iter__(self) -> Iterator[Prompt]:
        return iter(self._prompts.values())

    def __len__(self) -> int:
        return len(self._prompts)

    def keys(self) -> list[str]:
        return list(self._prompts)

    def prompt(self, key: str) -> Prompt:
        try:
            return self._prompts[key]
        except KeyError:
            raise PromptError(f"unknown prompt {key!r}; the catalogue has "
                              f"{', '.join(sorted(self._prompts))}") from None

    def placeholders(self, key: str) -> frozenset[str]:
        return self.prompt(key).placeholders

    def text(self, key: str, language: str, **values: object) -> str:
        """The prompt's text in `language`, its placeholders filled from `values`.

        Values the prompt has no placeholder for are ignored, so a flow may pass one set of
        values to several prompts.
        """
        prompt = self.prompt(key)
        language = str(language)
        if language not in prompt.texts:
            raise PromptError(f"prompt {key!r} has no text in language {language!r}; it has "
                              f"{', '.join(prompt.texts)}")
        missing = sorted(prompt.placeholders - values.keys())
        if missing:
            names = ", ".join(f"{{{name}}}" for name in missing)
            raise PromptError(f"prompt {key!r} needs a value for {names}")
        return prompt.texts[language].format_map({name: values[name]
                                                  for name in prompt.placeholders})


def load_catalogue(path: Path | str | None = None) -> Catalogue:
    """Read and check a catalogue: every prompt in every language, with the same placeholders."""
    path = Path(path) if path is not None else DEFAULT_CATALOGUE
    try:
        with path.open("rb") as file:
            data = tomllib.load(file)
    except FileNotFoundError:
        raise DataError(path, None, "the prompt catalogue does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise DataError(path, None, f"not valid TOML: {exc}") from None
    prompts = {}
    for key, table in data.items():
        if not isinstance(table, dict):
            raise DataError(path, None, f"{key!r} is not a table of texts per language")
        prompts[key] = _prompt(path, key, table)
    return Catalogue(prompts, path)


def _prompt(path: Path, key: str, table: dict[str, object]) -> Prompt:
    unknown = sorted(table.keys() - set(LANGUAGES))
    if unknown:
        raise DataError(path, None, f"prompt {key!r} has unknown language(s) {', '.join(unknown)}")
    texts: dict[str, str] = {}
    found: dict[str, frozenset[str]] = {}
    for language in LANGUAGES:
        text = table.get(language)
        if not isinstance(text, str) or not text.strip():
            raise DataError(path, None, f"prompt {key!r} has no {language} text")
        texts[language] = text
        found[language] = _placeholders(path, key, language, text)
    first, *others = LANGUAGES
    for language in others:
        if found[language] != found[first]:
            raise DataError(path, None, f"prompt {key!r}: the {first} text has placeholders "
                            f"{_names(found[first])} but the {language} text has "
                            f"{_names(found[language])}")
    return Prompt(key, MappingProxyType(texts), found[first])


def _placeholders(path: Path, key: str, language: str, text: str) -> frozenset[str]:
    """The names in `text`; only plain `{name}`, since values come from flows, not formats."""
    names = set()
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise DataError(path, None, f"prompt {key!r} ({language}): {exc}") from None
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            raise DataError(path, None, f"prompt {key!r} ({language}): placeholder "
                            f"{{{name}}} must be a plain {{name}}")
        names.add(name)
    return frozenset(names)


def _names(names: frozenset[str]) -> str:
    return ", ".join(f"{{{n}}}" for n in sorted(names)) or "none"


def spell_digits(number: str) -> str:
    """A phone number as text-to-speech should say it: digit by digit, a leading + as "plus".

    Speech engines read "0612345678" as one large number; spaced digits come out one by one.
    """
    spoken = " ".join(ch for ch in number if ch.isdigit())
    return f"plus {spoken}" if number.strip().startswith("+") else spoken
