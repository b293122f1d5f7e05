"""Place search over HTTP: the API with a token (GET /api/v1/places) and the console's map
with a login (GET /console/map/places.json) answer from one search function, in one shape."""

from __future__ import annotations

import re

import jsonschema_rs
import pytest
from flask.testing import FlaskClient

from routing.places import MAX_QUERY
from tests.web.helpers import login_as
from tests.web.test_api import bearer, make_token, token  # noqa: F401 (fixtures)
from web import api_contract

CONSOLE = "/console/map/places.json"
API = "/api/v1/places"


def api(client: FlaskClient, plain: str, lang: str | None = None, **params: object):
    headers = bearer(plain, **({"Accept-Language": lang} if lang else {}))
    return client.get(API, query_string=params, headers=headers)


def place_schema() -> jsonschema_rs.Draft202012Validator:
    document = api_contract.document()
    return jsonschema_rs.Draft202012Validator(
        {"$ref": "#/components/schemas/PlaceList", "components": document["components"]})


# --- the API ---------------------------------------------------------------------------------

def test_the_api_finds_a_postcode_with_its_municipality_and_meldkamer(
        client: FlaskClient, token: str) -> None:  # noqa: F811
    response = api(client, token, q="3511 AB")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    place_schema().validate(body)
    [item] = body["items"]
    assert body["query"] == "3511 AB"
    assert (item["label"], item["kind"]) == ("3511 Utrecht", "postcode")
    assert item["municipality"] == {"code": "GM0344", "name": "Utrecht"}
    assert item["meldkamer"] == {"code": "MN", "name": "Meldkamer Midden-Nederland"}
    assert item["note"] == {"id": "pc6_as_pc4", "message": "Alleen viercijferige postcodes zijn "
                            "bekend: 3511 AB valt in postcodegebied 3511."}
    assert 1000 <= item["radius_m"] <= 2500


def test_the_documents_example_is_what_the_api_answers(client: FlaskClient,
                                                       token: str) -> None:  # noqa: F811
    operation = api_contract.document()["paths"]["/places"]["get"]
    example = operation["responses"]["200"]["content"]["application/json"]["example"]
    place_schema().validate(example)
    body = api(client, token, q=example["query"]).get_json()
    assert body["query"] == example["query"]
    [answered], [documented] = body["items"], example["items"]
    assert {k: v for k, v in answered.items() if k not in ("lat", "lon", "radius_m")} == \
        {k: v for k, v in documented.items() if k not in ("lat", "lon", "radius_m")}


def test_the_api_lists_names_best_first_up_to_the_limit(client: FlaskClient,
                                                        token: str) -> None:  # noqa: F811
    items = api(client, token, q="fryslan", limit=3).get_json()["items"]
    assert len(items) == 3
    assert {item["label"] for item in items[:2]} == {"Súdwest-Fryslân", "Noardeast-Fryslân"}
    assert items[0]["kind"] == "municipality" and items[0]["meldkamer"]["code"] == "NN"
    assert api(client, token, q="xyzzy").get_json() == {"query": "xyzzy", "items": []}


def test_the_api_takes_coordinates(client: FlaskClient, token: str) -> None:  # noqa: F811
    [item] = api(client, token, q="52.0907, 5.1214").get_json()["items"]
    assert (item["kind"], item["lat"], item["lon"], item["radius_m"]) == \
        ("coordinates", 52.0907, 5.1214, 1000)
    assert item["municipality"]["name"] == "Utrecht" and item["note"] is None


@pytest.mark.parametrize(("params", "field", "message"), [
    ({}, "q", "Vul dit veld in."),
    ({"q": ""}, "q", "Vul dit veld in."),
    ({"q": "a" * (MAX_QUERY + 1)}, "q", "Te lang: hoogstens 100 tekens."),
    ({"q": "3511", "limit": "0"}, "limit", "Te klein: minstens 1."),
    ({"q": "3511", "limit": "26"}, "limit", "Te groot: hoogstens 25."),
    ({"q": "3511", "near": "x"}, "near", "Onbekende parameter."),
])
def test_a_missing_empty_or_too_long_query_is_a_400_naming_the_field(
        client: FlaskClient, token: str, params: dict, field: str,  # noqa: F811
        message: str) -> None:
    response = api(client, token, **params)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["id"] == "invalid_request" and error["fields"][field] == message


def test_a_blank_query_is_a_400_saying_what_to_type(client: FlaskClient,
                                                    token: str) -> None:  # noqa: F811
    response = api(client, token, q="   ")
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["id"] == "empty_query"
    assert error["message"] == error["fields"]["q"] == \
        "Typ een postcode, plaatsnaam, gemeente of coördinaten."


def test_coordinates_far_away_are_a_422_with_a_clear_message(
        client: FlaskClient, token: str) -> None:  # noqa: F811
    response = api(client, token, q="48.8566, 2.3522")
    assert response.status_code == 422
    error = response.get_json()["error"]
    assert error["id"] == "outside_netherlands"
    assert error["message"].startswith("Deze coördinaten liggen niet in of bij Nederland")
    assert "more than 25 km" in error["details"]["q"]
    english = api(client, token, lang="en", q="48.8566, 2.3522").get_json()["error"]
    assert english["message"].startswith("These coordinates are not in or near the Netherlands")
    bad = api(client, token, q="95.0, 5.1")
    assert bad.status_code == 422 and bad.get_json()["error"]["id"] == "invalid_coordinates"


def test_notes_follow_the_asked_language(client: FlaskClient, token: str) -> None:  # noqa: F811
    [item] = api(client, token, lang="en", q="5.1214, 52.0907").get_json()["items"]
    assert item["note"] == {"id": "swapped", "message": "Latitude and longitude swapped: that "
                            "way round they lie in the Netherlands."}


def test_the_api_needs_a_token(client: FlaskClient) -> None:
    response = client.get(API, query_string={"q": "3511"})
    assert response.status_code == 401 and response.get_json()["error"]["id"] == "unauthorized"


# --- the console ---------------------------------------------------------------------------

@pytest.mark.parametrize("role", ["centralist", "municipality_officer", "admin"])
def test_staff_get_the_same_suggestions_as_the_api(client: FlaskClient, token: str,  # noqa: F811
                                                   role: str) -> None:
    expected = api(client, token, q="Houten").get_json()
    login_as(client, role)
    response = client.get(CONSOLE, query_string={"q": "Houten"})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "private, no-store"
    assert response.get_json() == expected
    assert expected["items"][0]["label"] == "Houten"


def test_the_console_search_needs_a_login(client: FlaskClient) -> None:
    response = client.get(CONSOLE, query_string={"q": "3511"})
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_the_console_search_explains_bad_input_in_the_users_language(
        client: FlaskClient) -> None:
    login_as(client, "centralist")
    far = client.get(CONSOLE, query_string={"q": "48.8566, 2.3522"})
    assert far.status_code == 422
    assert far.get_json()["error"]["message"].startswith("Deze coördinaten liggen niet")
    blank = client.get(CONSOLE, query_string={"q": " ", "lang": "en"})
    assert blank.status_code == 400
    assert blank.get_json()["error"] == {
        "id": "empty_query", "message": "Type a postcode, place name, municipality or coordinates.",
        "fields": {"q": "Type a postcode, place name, municipality or coordinates."}}
    long = client.get(CONSOLE, query_string={"q": "x" * 101})
    assert long.status_code == 400 and long.get_json()["error"]["id"] == "query_too_long"
    [pc6] = client.get(CONSOLE, query_string={"q": "3511ab"}).get_json()["items"]
    assert pc6["note"]["message"] == "Only four-digit postcodes are known: 3511 AB lies in " \
        "postcode area 3511."


def test_the_area_picker_offers_an_accessible_place_search(client: FlaskClient) -> None:
    login_as(client, "centralist")
    page = client.get("/console/actions/new").get_data(as_text=True)
    combobox = re.search(r"<input[^>]*id=\"area-place\"[^>]*>", page, re.S)
    assert combobox is not None
    for attribute in ('role="combobox"', 'aria-autocomplete="list"', 'aria-expanded="false"',
                      'aria-controls="area-place-list"', 'autocomplete="off"'):
        assert attribute in combobox.group(0)
    assert "name=" not in combobox.group(0)  # never submitted with the form
    assert re.search(r'<ul id="area-place-list" role="listbox" '
                     r'aria-labelledby="area-place-label" hidden>', page)
    assert 'id="area-place-status" role="status" aria-live="polite"' in page
    assert f'data-places-url="{CONSOLE}"' in page and "map/place-search.js" in page
    assert "<script>" not in page  # scripts only from files (the CSP allows nothing else)
    english = client.get("/console/actions/new?lang=en").get_data(as_text=True)
    assert "Search for a postcode, place, municipality or coordinates" in english


def test_the_municipal_form_has_the_place_search_too(client: FlaskClient) -> None:
    login_as(client, "municipality_officer")
    page = client.get("/gemeente/buurtonderzoek/nieuw").get_data(as_text=True)
    assert 'id="area-place"' in page and "map/place-search.js" in page


def test_every_search_error_has_a_message_and_every_text_has_english() -> None:
    from routing import places
    from web.i18n import ENGLISH
    from web.places import ERRORS, NOTES

    assert set(ERRORS) == set(places.ERRORS)
    texts = {message for _status, message in ERRORS.values()} | set(NOTES.values())
    assert sorted(text for text in texts if text not in ENGLISH) == []
