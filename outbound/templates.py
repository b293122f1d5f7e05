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


OUTCOMES = {
    Language.NL: {"found": "gevonden", "arrested": "de verdachte is aangehouden",
                  "not_found": "helaas niet gevonden", "cancelled": "de actie is ingetrokken"},
    Language.EN: {"found": "found", "arrested": "the suspect has been arrested",
                  "not_found": "not found, unfortunately",
                  "cancelled": "the action has been called off"},
}
RESULT = {
    Language.NL: "Burgernet: de actie '{title}' is beëindigd: {outcome}. {text} "
                 "Bedankt voor uw hulp.",
    Language.EN: "Burgernet: the action '{title}' has ended: {outcome}. {text} "
                 "Thank you for your help.",
}


def result_text(action: Action, language: Language) -> str:
    """How the action ended, for everyone it reached (also when nothing was found)."""
    english = Language(language) == Language.EN
    lang = Language.EN if english else Language.NL
    title = action.title_en if english and action.title_en else action.title_nl
    outcome = OUTCOMES[lang][action.outcome.value if action.outcome else "cancelled"]
    text = RESULT[lang].format(title=title.rstrip("."), outcome=outcome,
                               text=action.outcome_text or "")
    return " ".join(text.split())


def message_text(action: Action, purpose: str, language: Language, free_number: str) -> str:
    """The text of a delivery of PURPOSE (alert or result)."""
    if purpose == "result":
        return result_text(action, language)
    return alert_text(action, language, free_number)


def subject_text(action: Action, purpose: str, language: Language) -> str:
    """An e-mail subject: Burgernet, what happened, and the action's title."""
    english = Language(language) == Language.EN
    title = action.title_en if english and action.title_en else action.title_nl
    if purpose == "result":
        return f"Burgernet: {'result' if english else 'afloop'} - {title}"
    return f"Burgernet: {title}"
