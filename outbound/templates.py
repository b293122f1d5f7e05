"""The text of outbound messages, per participant language (Dutch when no English is given)."""

from __future__ import annotations

from core.models import Action, Language

ALERT = {
    Language.NL: "Burgernet: {title}. {description} {instruction} "
                 "Gezien? Bel gratis {number}.",
    Language.EN: "Burgernet: {title}. {description} {instruction} "
                 "Seen anything? Call {number} free of charge.",
}


def alert_text(action: Action, language: Language, free_number: str) -> str:
    """The alert for one language; English falls back to Dutch field by field."""
    english = Language(language) == Language.EN
    title = (action.title_en if english and action.title_en else action.title_nl)
    description = (action.description_en if english and action.description_en
                   else action.description_nl)
    instruction = (action.instruction_en if english and action.instruction_en
                   else action.instruction_nl)
    text = ALERT[Language.EN if english else Language.NL].format(
        title=title.rstrip("."), description=description or "", instruction=instruction or "",
        number=free_number)
    return " ".join(text.split())
