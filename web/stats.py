"""Statistics: charts with a table of the same numbers each, and every table as CSV."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from flask import Blueprint, Response, abort, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_login import current_user

from core import stats
from core.models import ActionKind, Channel, DeliveryPurpose, Outcome, Role
from core.stats import Period, PeriodInvalid
from core.targeting import LOCAL_TIME
from web.auth import roles_required
from web.context import db
from web.i18n import current_language
from web.i18n import translate as _
from web.nav import STAFF

bp = Blueprint("stats", __name__, url_prefix="/statistiek")

KIND_LABELS = {ActionKind.SUSPECT: "Verdachte", ActionKind.VEHICLE: "Voertuig",
               ActionKind.MISSING_PERSON: "Vermiste persoon", ActionKind.AMBER: "AMBER Alert",
               ActionKind.NEIGHBOURHOOD_INQUIRY: "Buurtonderzoek",
               ActionKind.PREVENTIVE: "Preventief bericht"}
OUTCOME_LABELS = {Outcome.FOUND: "Gevonden", Outcome.ARRESTED: "Aangehouden",
                  Outcome.NOT_FOUND: "Niet gevonden", Outcome.CANCELLED: "Geannuleerd"}
CHANNEL_LABELS = {Channel.VOICE: "Spraak", Channel.SMS: "Sms", Channel.EMAIL: "E-mail",
                  Channel.PUSH: "Push"}
PURPOSE_LABELS = {DeliveryPurpose.ALERT: "Oproep", DeliveryPurpose.RESULT: "Afloop",
                  DeliveryPurpose.UPDATE: "Vervolgbericht"}
MONTH_NAMES = {"nl": "jan feb mrt apr mei jun jul aug sep okt nov dec".split(),
               "en": "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()}
#: Query parameter → core sort key, for the municipality table.
SORTS = {"naam": "name", "deelnemers": "participants", "dekking": "coverage"}
#: Cells starting with these are formulas to a spreadsheet (OWASP "CSV injection").
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


# --- tables: one definition serves the page and the CSV --------------------------------

@dataclass(frozen=True)
class Column:
    label: str
    #: text, month, count, rate (a decimal number) or percent (a ratio 0..1); a value is None
    #: where it cannot be computed
    kind: str = "count"
    digits: int = 1
    sort: str | None = None


@dataclass(frozen=True)
class Table:
    slug: str
    caption: str
    columns: list[Column]
    rows: list[list[Any]]
    footer: list[Any] | None = None
    notes: list[str] = field(default_factory=list)
    #: The column that names each row (a row header for screen readers).
    row_header: int = 0


def months_table(months: list[stats.MonthCount]) -> Table:
    columns = [Column(_("Maand"), "month"), *(Column(_(KIND_LABELS[k])) for k in ActionKind),
               Column(_("Totaal"))]
    rows = [[m.month, *(m.by_kind[k] for k in ActionKind), m.total] for m in months]
    footer = [_("Totaal"), *(sum(m.by_kind[k] for m in months) for k in ActionKind),
              sum(m.total for m in months)]
    return Table("acties-per-maand", _("Gestarte acties per maand"), columns, rows, footer)


def success_table(rows: list[stats.KindSuccess]) -> Table:
    columns = [Column(_("Soort"), "text"), Column(_("Beëindigd")),
               *(Column(_(OUTCOME_LABELS[o])) for o in Outcome), Column(_("Succes"), "percent")]
    return Table("succes-per-soort", _("Succes per soort actie"), columns,
                 [[_(KIND_LABELS[r.kind]), r.ended, *(r.by_outcome[o] for o in Outcome), r.rate]
                  for r in rows],
                 notes=[_("Succes: het deel van de beëindigde acties met afloop gevonden of "
                          "aangehouden.")])


def calls_table(rows: list[stats.CallShare]) -> Table:
    columns = [Column(_("Soort"), "text"), Column(_("Acties")),
               Column(_("Met ten minste één beller")), Column(_("Aandeel"), "percent")]
    *kinds, total = rows
    return Table("bellers-per-soort", _("Acties waarover ten minste één deelnemer belde"),
                 columns,
                 [[_(KIND_LABELS[r.kind]), r.actions, r.called, r.rate]  # type: ignore[index]
                  for r in kinds],
                 [_("Totaal"), total.actions, total.called, total.rate])


REACH = "Per 1.000 inwoners"


def municipalities_table(rows: list[stats.Coverage]) -> Table:
    columns = [Column(_("CBS-code"), "text"), Column(_("Gemeente"), "text", sort="naam"),
               Column(_("Deelnemers"), sort="deelnemers"), Column(_("Inwoners")),
               Column(_(REACH), "rate", sort="dekking")]
    notes = [_("Deelnemers: geverifieerd en niet afgemeld, naar woonadres. Inwoners: CBS, "
               "1 januari 2021. Bereik: deelnemers per 1.000 inwoners.")]
    known = [r.population for r in rows if r.population]
    if not known:
        notes.append(_("Het inwonertal van de gemeenten is niet bekend, dus het bereik ook "
                       "niet."))
    return Table("deelnemers-per-gemeente", _("Deelnemers per gemeente"), columns,
                 [[r.code, r.name, r.participants, r.population, r.per_thousand] for r in rows],
                 _total(rows, known), notes, row_header=1)


def regions_table(rows: list[stats.Coverage]) -> Table:
    columns = [Column(_("Code"), "text"), Column(_("Veiligheidsregio"), "text"),
               Column(_("Deelnemers")), Column(_("Inwoners")), Column(_(REACH), "rate")]
    known = [r.population for r in rows if r.population]
    return Table("deelnemers-per-regio", _("Deelnemers per veiligheidsregio"), columns,
                 [[r.code, r.name, r.participants, r.population, r.per_thousand] for r in rows],
                 _total(rows, known), row_header=1)


def _total(rows: list[stats.Coverage], known: list[int]) -> list[Any]:
    participants = sum(r.participants for r in rows)
    population = sum(known) if len(known) == len(rows) else None
    return ["", _("Totaal"), participants, population,
            1000 * participants / population if population else None]


def delivery_table(rows: list[stats.ChannelDelivery]) -> Table:
    columns = [Column(_("Kanaal"), "text"), Column(_("Totaal")),
               Column(_("Afgeleverd of opgenomen")), Column(_("Ingesproken op voicemail")),
               Column(_("Verzonden, geen bevestiging")), Column(_("Mislukt")),
               Column(_("Overig")), Column(_("Afgeleverd (%)"), "percent"),
               Column(_("Mislukt (%)"), "percent")]
    return Table("aflevering-per-kanaal", _("Aflevering per kanaal"), columns,
                 [[_(CHANNEL_LABELS[r.channel]), r.total, r.confirmed, r.voicemail,
                   r.unconfirmed, r.failed, r.other, r.rate,
                   r.failed / r.total if r.total else None] for r in rows],
                 notes=[_("Afgeleverd of opgenomen: de aanbieder meldde de aflevering, of een "
                          "persoon nam de oproep aan. Ingesproken op voicemail: een "
                          "antwoordapparaat nam de oproep aan en het bericht is na de piep "
                          "ingesproken. Verzonden, geen bevestiging: de aanbieder nam het "
                          "bericht aan, maar meldt geen aflevering (e-mail en push kennen die "
                          "niet). Overig: overgeslagen of nog onderweg.")])


def extremes_tables(rows: list[stats.Coverage]) -> tuple[Table, Table, str]:
    found = stats.extremes(rows)
    columns = [Column(_("Gemeente"), "text"), Column(_("Deelnemers")), Column(_("Inwoners")),
               Column(_(REACH), "rate")]

    def table(slug: str, caption: str, chosen: list[stats.Coverage]) -> Table:
        return Table(slug, _(caption), columns,
                     [[r.name, r.participants, r.population, r.per_thousand] for r in chosen])

    if found.basis == "coverage":
        return (table("top-gemeenten", "Gemeenten met het grootste bereik", found.top),
                table("bottom-gemeenten", "Gemeenten met het kleinste bereik", found.bottom),
                found.basis)
    return (table("top-gemeenten", "Gemeenten met de meeste deelnemers", found.top),
            table("bottom-gemeenten", "Gemeenten met de minste deelnemers", found.bottom),
            found.basis)


# --- the reach map --------------------------------------------------------------------

#: ColorBrewer YlGnBu, five classes: sequential, readable for the colour-blind and in print.
REACH_COLOURS = ("#ffffcc", "#a1dab4", "#41b6c4", "#2c7fb8", "#253494")
UNKNOWN_COLOUR = "#d9d9d9"


@dataclass(frozen=True)
class Legend:
    """One map view's classes: upper bounds, their colours and labels."""

    breaks: list[float]
    colours: list[str]
    labels: list[str]


def legend(rows: Sequence[stats.Coverage]) -> Legend:
    breaks = stats.class_breaks([r.per_thousand for r in rows if r.per_thousand is not None],
                                len(REACH_COLOURS))
    colours = list(REACH_COLOURS[len(REACH_COLOURS) - len(breaks):])

    def shown(bound: float) -> str:  # as many decimals as two significant digits need
        digits = 1 if bound <= 0 else max(1, 1 - math.floor(math.log10(bound)))
        return format_cell(bound, Column("", "rate", digits=digits))

    labels = [_("tot en met {high}", high=shown(high)) if index == 0 else
              f"{shown(breaks[index - 1])} – {shown(high)}" for index, high in enumerate(breaks)]
    return Legend(breaks, colours, labels)


def reach_map(views: dict[str, list[stats.Coverage]], legends: dict[str, Legend]
              ) -> dict[str, Any]:
    """What the map script colours: per municipality and per region (VIEWS) its reach,
    participants and inhabitants, each view's classes, and each municipality's region."""
    def figures(rows: Sequence[stats.Coverage]) -> dict[str, Any]:
        return {r.code: [r.per_thousand, r.participants, r.population, r.name] for r in rows}

    return {"figures": {view: figures(rows) for view, rows in views.items()},
            "legends": {view: vars(legends[view]) for view in views},
            "region_of": {r.code: r.region for r in views["municipalities"]},
            "unknown": UNKNOWN_COLOUR,
            "labels": {"participants": _("deelnemers"), "reach": _("per 1.000 inwoners"),
                       "unknown": _("inwonertal onbekend")}}


# --- formatting -----------------------------------------------------------------------

def format_cell(value: Any, column: Column, for_csv: bool = False) -> str:
    """VALUE as the page (or, FOR_CSV, a spreadsheet) in the current language shows it."""
    dutch = current_language() == "nl"
    if value is None:
        return "" if for_csv else "–"
    if column.kind == "month" and isinstance(value, date):
        return f"{value:%Y-%m}" if for_csv else \
            f"{MONTH_NAMES[current_language()][value.month - 1]} {value.year}"
    if column.kind == "rate" and isinstance(value, int | float):
        number = f"{value:.{column.digits}f}"
        return number.replace(".", ",") if dutch else number
    if column.kind == "percent" and isinstance(value, float):
        number = f"{value * 100:.{column.digits}f}"
        number = number.replace(".", ",") if dutch else number
        return number if for_csv else (f"{number} %" if dutch else f"{number}%")
    if isinstance(value, int) and not for_csv:
        grouped = f"{value:,}"
        return grouped.replace(",", ".") if dutch else grouped
    return str(value)


def guard_formula(cell: str) -> str:
    """CELL made inert for spreadsheets: a leading formula character gets a quote first."""
    return "'" + cell if cell.startswith(FORMULA_START) else cell


def csv_response(header: Sequence[str], rows: Iterable[Sequence[str]], filename: str) -> Response:
    """A CSV download Excel opens correctly: UTF-8 with a BOM; in Dutch separated by
    semicolons (Dutch Excel's list separator, since the comma is its decimal mark), in
    English by commas."""
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.writer(buffer, delimiter=";" if current_language() == "nl" else ",",
                        lineterminator="\r\n")
    writer.writerow([guard_formula(cell) for cell in header])
    writer.writerows([guard_formula(cell) for cell in row] for row in rows)
    response = Response(buffer.getvalue().encode("utf-8"),
                        content_type="text/csv; charset=utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.headers["Cache-Control"] = "no-store"
    return response


def table_csv(table: Table, period: Period) -> Response:
    header = [column.label for column in table.columns]
    rows = [[format_cell(value, column, for_csv=True) for value, column in
             zip(row, table.columns, strict=True)]
            for row in [*table.rows, *([table.footer] if table.footer else [])]]
    return csv_response(header, rows, f"{table.slug}_{period.label}.csv")


# --- charts ---------------------------------------------------------------------------

def _series(table: Table, values: Sequence[int], *, percent: bool = False,
            rows: list[list[Any]] | None = None, **options: Any) -> dict[str, Any]:
    """Chart data from columns VALUES of TABLE (labels from its first column): the chart
    and the table show the same numbers."""
    rows = table.rows if rows is None else rows
    return {"labels": [format_cell(row[0], table.columns[0]) for row in rows],
            "datasets": [{"label": table.columns[i].label,
                          "data": [(None if row[i] is None else round(row[i] * 100, 2))
                                   if percent else row[i] for row in rows]} for i in values],
            "percent": percent, **options}


def chart_data(tables: dict[str, Table], extremes: tuple[Table, Table, str]) -> dict[str, Any]:
    """The figures the page's script draws, with labels in the current language."""
    top, bottom, basis = extremes
    ranked = top.rows + [row for row in bottom.rows[::-1] if row not in top.rows]
    return {
        "months": _series(tables["months"], range(1, len(ActionKind) + 1), stacked=True),
        "success": _series(tables["success"], [len(tables["success"].columns) - 1],
                           percent=True, max=100),
        "calls": _series(tables["calls"], [3], percent=True, max=100),
        "municipalities": _series(top, [3] if basis == "coverage" else [1], rows=ranked,
                                  horizontal=True),
        "delivery": _series(tables["delivery"], [2, 3, 4, 5, 6], stacked=True),
    }


# --- views ----------------------------------------------------------------------------

def _scope() -> int | None:
    """Whose actions count: an admin's page covers every organisation."""
    return None if current_user.role == Role.ADMIN else int(current_user.organisation_id)


def _choices() -> tuple[Period, DeliveryPurpose | None]:
    """The period and purpose asked for, or PeriodInvalid with errors by form field."""
    errors: dict[str, str] = {}
    period = None
    try:
        period = stats.parse_period(request.args.get("van"), request.args.get("tot"),
                                    datetime.now(LOCAL_TIME).date())
    except PeriodInvalid as exc:
        errors.update({"van" if name == "start" else "tot": message
                       for name, message in exc.errors.items()})
    purpose = None
    if request.args.get("doel"):
        try:
            purpose = DeliveryPurpose(request.args["doel"])
        except ValueError:
            errors["doel"] = "Kies een doel uit de lijst."
    if errors or period is None:
        raise PeriodInvalid(errors)
    return period, purpose


def _sort() -> tuple[str, bool]:
    key = request.args.get("sorteer", "naam")
    return (key if key in SORTS else "naam"), request.args.get("volgorde") == "af"


@bp.get("/")
@roles_required(*STAFF)
def index() -> ResponseReturnValue:
    """The statistics page for the chosen period; a wrong period says why and keeps it."""
    form = {name: request.args.get(name, "") for name in ("van", "tot", "doel")}
    try:
        period, purpose = _choices()
    except PeriodInvalid as exc:
        return render_template("stats/index.html", form=form, errors=exc.errors,
                               purposes=PURPOSE_LABELS, figures=None), 400
    figures = stats.collect(db(), period, _scope(), purpose)
    sort, descending = _sort()
    municipalities = stats.sort_coverage(figures.municipalities, SORTS[sort], descending)
    extremes = extremes_tables(figures.municipalities)
    tables = {"months": months_table(figures.months),
              "success": success_table(figures.success),
              "calls": calls_table(figures.calls),
              "municipalities": municipalities_table(municipalities),
              "regions": regions_table(figures.regions),
              "delivery": delivery_table(figures.delivery)}
    views = {"municipalities": figures.municipalities, "regions": figures.regions}
    legends = {view: legend(rows) for view, rows in views.items()}
    form.update(van=f"{period.first:%Y-%m}", tot=f"{period.last:%Y-%m}")
    query = {"van": form["van"], "tot": form["tot"], "doel": purpose.value if purpose else None}
    return render_template("stats/index.html", form=form, errors={}, purposes=PURPOSE_LABELS,
                           query=query, figures=figures, tables=tables, extremes=extremes,
                           charts=chart_data(tables, extremes), sort=sort,
                           reach=reach_map(views, legends), legends=legends,
                           boundaries_url=url_for("console.boundaries"),
                           descending=descending, format_cell=format_cell,
                           scope=current_user.organisation.name if _scope() else None)


EXPORTS: dict[str, Callable[[Period, DeliveryPurpose | None], Table]] = {
    "acties-per-maand": lambda period, _purpose: months_table(
        stats.actions_per_month(db(), period, _scope())),
    "succes-per-soort": lambda period, _purpose: success_table(
        stats.success_by_kind(db(), period, _scope())),
    "bellers-per-soort": lambda period, _purpose: calls_table(
        stats.call_share(db(), period, _scope())),
    "deelnemers-per-gemeente": lambda _period, _purpose: municipalities_table(
        stats.sort_coverage(stats.participants_by_municipality(db()), SORTS[_sort()[0]],
                            _sort()[1])),
    "deelnemers-per-regio": lambda _period, _purpose: regions_table(
        stats.participants_by_region(db(), stats.participants_by_municipality(db()))),
    "aflevering-per-kanaal": lambda period, purpose: delivery_table(
        stats.delivery_by_channel(db(), period, _scope(), purpose)),
}


@bp.get("/<table>.csv")
@roles_required(*STAFF)
def export(table: str) -> ResponseReturnValue:
    """One table of the page as CSV, for the same period and scope."""
    if table not in EXPORTS:
        abort(404)
    try:
        period, purpose = _choices()
    except PeriodInvalid as exc:
        message = " ".join(_(text) for text in exc.errors.values())
        return Response(message, 400, content_type="text/plain; charset=utf-8")
    return table_csv(EXPORTS[table](period, purpose), period)
