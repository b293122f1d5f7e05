"""`burgernet sounds ...`: the prompt catalogue and its sound cache."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from core.cli import Context, pass_context
from ivr.prompts import LANGUAGES, load_catalogue
from ivr.tts import PromptRenderer, sounds_dir

_CATALOGUE_OPTION = click.option(
    "--catalogue", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
    help="a prompt catalogue other than the shipped sounds/prompts.toml")


@click.group("sounds")
def sounds_command() -> None:
    """Voice prompts: the catalogue and its rendered sound files."""


@sounds_command.command("render")
@click.option("--no-gtts", is_flag=True, help="never ask Google; speak with espeak-ng only")
@_CATALOGUE_OPTION
@pass_context
def render_command(context: Context, no_gtts: bool, catalogue: Path | None) -> None:
    """Render every fixed prompt in Dutch and English into $BURGERNET_HOME/var/sounds.

    Prompts with placeholders are skipped: calls render them with their values when needed.
    Running it again renders only what is missing.
    """
    prompts = load_catalogue(catalogue)
    cache = sounds_dir(context.settings)
    renderer = PromptRenderer(cache, use_gtts=not no_gtts)
    fixed = [prompt for prompt in prompts if not prompt.is_template]
    templated = [prompt.key for prompt in prompts if prompt.is_template]
    with click.progressbar(range(len(fixed) * len(LANGUAGES)), label="prompts",
                           file=sys.stderr) as bar:
        counts = renderer.render_fixed(prompts, progress=bar.update)
    cached = counts.pop("cached", 0)
    rendered = sum(counts.values())
    by_engine = ", ".join(f"{engine} {n}" for engine, n in counts.most_common())
    click.echo(f"{rendered} rendered" + (f" ({by_engine})" if by_engine else "")
               + f", {cached} already cached")
    if templated:
        click.echo(f"{len(templated)} prompts with placeholders left for calls to render: "
                   f"{', '.join(templated)}")
    click.echo(f"sound files in {cache}")


@sounds_command.command("list")
@_CATALOGUE_OPTION
@pass_context
def list_command(context: Context, catalogue: Path | None) -> None:
    """Every prompt key with its placeholders and whether it is rendered, per language."""
    prompts = load_catalogue(catalogue)
    renderer = PromptRenderer(sounds_dir(context.settings), use_gtts=False)
    for prompt in prompts:
        if prompt.is_template:
            state = "rendered per call: " + " ".join(f"{{{name}}}"
                                                     for name in sorted(prompt.placeholders))
        else:
            found = {language: renderer.is_cached(prompt.texts[language], language)
                     for language in LANGUAGES}
            state = " ".join(f"{language} {'rendered' if is_cached else 'missing'}"
                             for language, is_cached in found.items())
        click.echo(f"{prompt.key:22} {state}")
