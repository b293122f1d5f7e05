"""The text of outbound messages, per participant language (Dutch when no English is given)."""

from __future__ import annotations

from core.models import Action, ActionKind, Language

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
        title=title.rstrip("."), description=sentence(description),
        instruction=sentence(instruction), number=free_number)
    return " ".join(text.split())


def sentence(text: str | None) -> str:
    """TEXT ending as a sentence ends, so the next one does not run into it."""
    text = (text or "").strip()
    return text if not text or text[-1] in ".!?…)\"'" else text + "."


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
                               text=sentence(action.outcome_text))
    return " ".join(text.split())


#: Information, not a search: no call to look out for anyone.
NOTICE = {Language.NL: "Burgernet: {title}. {description} {instruction}",
          Language.EN: "Burgernet: {title}. {description} {instruction}"}
#: A neighbourhood inquiry by e-mail: the question, then the personal link (added per
#: delivery by inquiry_text).
INQUIRY = {
    Language.NL: "Burgernet-buurtonderzoek: {title}\n\n{description}\n\n{instruction}",
    Language.EN: "Burgernet neighbourhood inquiry: {title}\n\n{description}\n\n{instruction}",
}
INQUIRY_LINK = {
    Language.NL: ("Weet u iets dat kan helpen? Reageer via uw persoonlijke link (werkt "
                  "{days} dagen):\n{link}\n\nDeze link is alleen voor u: stuur deze e-mail "
                  "niet door. Ziet u nu iets wat direct hulp vraagt? Bel 112."),
    Language.EN: ("Do you know something that could help? Reply through your personal link "
                  "(works for {days} days):\n{link}\n\nThis link is for you only: please do "
                  "not forward this e-mail. Do you see something that needs help right now? "
                  "Call 112."),
}
UPDATE = {
    Language.NL: "Burgernet: nieuws over het buurtonderzoek '{title}'.\n\n{update}\n\n"
                 "Bedankt voor uw hulp.",
    Language.EN: "Burgernet: news about the neighbourhood inquiry '{title}'.\n\n{update}\n\n"
                 "Thank you for your help.",
}


def _texts(action: Action, language: Language) -> tuple[Language, str, str, str]:
    """The language to write in and the title, description and instruction in it."""
    english = Language(language) == Language.EN
    lang = Language.EN if english else Language.NL
    title = action.title_en if english and action.title_en else action.title_nl
    description = (action.description_en if english and action.description_en
                   else action.description_nl) or ""
    instruction = (action.instruction_en if english and action.instruction_en
                   else action.instruction_nl) or ""
    return lang, title, description, instruction


def notice_text(action: Action, language: Language) -> str:
    """A preventive message: information, no call to look out for anyone."""
    lang, title, description, instruction = _texts(action, language)
    text = NOTICE[lang].format(title=title.rstrip("."), description=description,
                               instruction=instruction)
    return " ".join(text.split())


def inquiry_text(action: Action, language: Language, link: str | None = None,
                 days: int = 14) -> str:
    """An inquiry's e-mail: the question and, when given, the recipient's personal link."""
    lang, title, description, instruction = _texts(action, language)
    parts = [INQUIRY[lang].format(title=title, description=description.strip(),
                                  instruction=instruction.strip()).strip()]
    if link:
        parts.append(INQUIRY_LINK[lang].format(days=days, link=link))
    return "\n\n".join(part for part in parts if part).replace("\n\n\n\n", "\n\n")


def update_text(action: Action, language: Language) -> str:
    """An inquiry's follow-up, for everyone its e-mail reached."""
    english = Language(language) == Language.EN
    lang = Language.EN if english else Language.NL
    title = action.title_en if english and action.title_en else action.title_nl
    update = (action.update_en if english and action.update_en else action.update_nl) or ""
    return UPDATE[lang].format(title=title, update=update.strip())


def message_text(action: Action, purpose: str, language: Language, free_number: str) -> str:
    """The text of a delivery of PURPOSE (alert, result or update); an inquiry's personal
    link is added per delivery (inquiry_text)."""
    if purpose == "result":
        return result_text(action, language)
    if purpose == "update":
        return update_text(action, language)
    if action.kind == ActionKind.NEIGHBOURHOOD_INQUIRY:
        return inquiry_text(action, language)
    if action.kind == ActionKind.PREVENTIVE:
        return notice_text(action, language)
    return alert_text(action, language, free_number)


def subject_text(action: Action, purpose: str, language: Language) -> str:
    """An e-mail subject: Burgernet, what happened, and the action's title."""
    english = Language(language) == Language.EN
    title = action.title_en if english and action.title_en else action.title_nl
    if purpose == "result":
        return f"Burgernet: {'result' if english else 'afloop'} - {title}"
    if purpose == "update":
        return f"Burgernet: {'update' if english else 'vervolg'} - {title}"
    if action.kind == ActionKind.NEIGHBOURHOOD_INQUIRY:
        return f"Burgernet: {'neighbourhood inquiry' if english else 'buurtonderzoek'} - {title}"
    return f"Burgernet: {title}"
