"""The OpenAPI document of ``/api/v2.0`` tells the truth: every route is in it, every documented
operation exists, it is valid OpenAPI 3, and it documents summaries and error responses."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from starlette.routing import BaseRoute

from portside.api.harbor import create_management_app
from portside.api.services import build_services
from portside.config import Settings
from tests.support.server import PortsideServer

API = "/api/v2.0"
_METHODS = {"get", "put", "post", "delete", "patch", "head", "options"}
_PARAMETER = re.compile(r"\{([^}:]+)(:[^}]+)?\}")


@pytest.fixture(scope="module")
def document(registry: PortsideServer) -> dict[str, Any]:
    response = httpx.get(f"{registry.url}{API}/openapi.json", timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    spec: dict[str, Any] = response.json()
    return spec


@pytest.fixture(scope="module")
def management_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FastAPI]:
    """The management app built in-process, for its route table."""
    data_dir: Path = tmp_path_factory.mktemp("openapi")
    services = build_services(Settings(data_dir=data_dir))
    try:
        yield create_management_app(services)
    finally:
        asyncio.run(services.close())


def operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in _METHODS:
                yield path, method, operation


def api_routes(
    routes: Sequence[BaseRoute], prefix: str = "", shown: bool = True
) -> Iterator[tuple[str, set[str], bool]]:
    """(path, methods, in the schema) of every API route, descending into included routers
    (recent FastAPI keeps them as lazily flattened branches rather than copying their routes)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            context = route.include_context  # type: ignore[attr-defined]
            yield from api_routes(
                included.routes, prefix + context.prefix, shown and context.include_in_schema
            )
        elif isinstance(route, APIRoute):
            yield prefix + route.path, set(route.methods), shown and route.include_in_schema


def route_table(app: FastAPI, *, shown: bool) -> set[tuple[str, str]]:
    """(method, path) of the API routes the app serves in (or hidden from) the schema, with
    paths spelled as the document spells them."""
    routes = set()
    for path, methods, in_schema in api_routes(app.routes):
        if in_schema != shown:
            continue
        spelled = _PARAMETER.sub(lambda m: "{" + m.group(1) + "}", path)
        for method in methods:
            routes.add((method.lower(), spelled))
    return routes


def test_document_is_valid_openapi_3(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.")
    validate(document)


def test_every_route_is_documented_and_every_documented_route_exists(
    document: dict[str, Any], management_app: FastAPI
) -> None:
    documented = {(method, path) for path, method, _ in operations(document)}
    served = route_table(management_app, shown=True)
    assert len(served) > 30
    assert served - documented == set(), "routes missing from the document"
    assert documented - served == set(), "documented operations without a route"
    # Routes left out of the document may only be trailing-slash spellings of documented ones.
    hidden = route_table(management_app, shown=False)
    aliases = {(method, path.rstrip("/")) for method, path in hidden}
    assert aliases - documented == set(), "routes hidden from the document"


def _fill(path: str) -> str:
    values = {
        "project_name_or_id": "library",
        "project_name": "library",
        "repository_name": "no-such-repo",
        "reference": "latest",
        "meta_name": "public",
    }
    return _PARAMETER.sub(lambda m: values.get(m.group(1), "1"), path)


def test_every_documented_operation_answers_over_http(
    registry: PortsideServer, document: dict[str, Any]
) -> None:
    """Called anonymously, each documented operation is reached: it answers with its own
    refusal (401) or result, never the router's 404 for an unknown path nor a 405."""
    with httpx.Client(base_url=f"{registry.url}{API}", timeout=30) as anonymous:
        for path, method, _ in operations(document):
            response = anonymous.request(method.upper(), _fill(path), json={})
            assert response.status_code != 405, (method, path)
            assert response.status_code < 500, (method, path, response.text)
            if response.status_code == 404 and method != "head":
                message = response.json()["errors"][0]["message"]
                assert message != "Not Found", (method, path, "no such route")


def test_docs_page_is_html(registry: PortsideServer, document: dict[str, Any]) -> None:
    response = httpx.get(f"{registry.url}{API}/docs", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<html" in response.text.lower()
    assert "openapi.json" in response.text  # the page loads the document above


def test_every_operation_has_a_summary_and_documented_errors(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    problems = []
    for path, method, operation in operations(document):
        where = f"{method.upper()} {path}"
        if not operation.get("summary"):
            problems.append(f"{where}: no summary")
        responses = operation.get("responses", {})
        if "422" in responses:
            problems.append(f"{where}: documents a 422 the API never sends")
        if not any(status.startswith("2") for status in responses):
            problems.append(f"{where}: no success response")
        for status in ("400", "401", "403", "404", "500"):
            content = responses.get(status, {}).get("content", {}).get("application/json", {})
            ref = content.get("schema", {}).get("$ref", "")
            if not ref:
                problems.append(f"{where}: {status} is not documented with Harbor's error body")
            elif ref.rsplit("/", 1)[-1] not in schemas:
                problems.append(f"{where}: {status} refers to a missing schema {ref}")
    assert problems == []
    errors = schemas["Errors"]["properties"]["errors"]
    assert errors["type"] == "array"


def test_labels_and_their_model_are_documented(document: dict[str, Any]) -> None:
    """Harbor's Label model and the labels paths, as Harbor's clients expect them."""
    paths = document["paths"]
    assert set(paths["/labels"]) >= {"get", "post"}
    assert set(paths["/labels/{label_id}"]) >= {"get", "put", "delete"}
    listing = paths["/labels"]["get"]
    names = {parameter["name"] for parameter in listing["parameters"]}
    assert {"scope", "project_id", "name", "q", "sort", "page", "page_size"} <= names
    item = listing["responses"]["200"]["content"]["application/json"]["schema"]["items"]
    model = document["components"]["schemas"][item["$ref"].rsplit("/", 1)[-1]]
    assert set(model["properties"]) == {
        "id",
        "name",
        "description",
        "color",
        "scope",
        "project_id",
        "creation_time",
        "update_time",
    }


_SENT_METHODS = ("get", "put", "post", "delete", "patch")


def test_every_405_names_every_method_of_its_path(
    registry: PortsideServer, document: dict[str, Any]
) -> None:
    """A method a path does not support is a 405 whose ``Allow`` lists exactly the methods the
    document lists for that path: not only the first matching route's, and not a parameterised
    sibling's (``PUT /users/current`` is no ``PUT /users/{user_id}`` with a bad id). ``HEAD`` is
    in ``Allow`` only where the document lists it: the server answers it nowhere else."""
    problems = []
    with registry.client() as client:
        for path, item in document["paths"].items():
            supported = {method for method in item if method in _METHODS}
            for method in sorted(set(_SENT_METHODS) - supported):
                response = client.request(method.upper(), API + _fill(path), json={})
                allow = {m.strip().lower() for m in response.headers.get("allow", "").split(",")}
                if response.status_code != 405 or allow != supported:
                    problems.append(
                        f"{method.upper()} {path}: {response.status_code}, Allow {sorted(allow)}"
                    )
                elif response.json()["errors"][0]["code"] != "METHOD_NOT_ALLOWED":
                    problems.append(f"{method.upper()} {path}: {response.text}")
    assert problems == []


def _strings(schema: Any, schemas: dict[str, Any], seen: set[str]) -> Iterator[dict[str, Any]]:
    """Every string schema in ``schema``, following references once."""
    if isinstance(schema, list):
        for item in schema:
            yield from _strings(item, schemas, seen)
    elif isinstance(schema, dict):
        ref = schema.get("$ref", "")
        if ref:
            name = ref.rsplit("/", 1)[-1]
            if name not in seen:
                seen.add(name)
                yield from _strings(schemas[name], schemas, seen)
            return
        if schema.get("type") == "string":
            yield schema
        for key, value in schema.items():
            if key == "properties":
                for nested in value.values():
                    yield from _strings(nested, schemas, seen)
            elif key in ("items", "anyOf", "oneOf", "allOf", "additionalProperties"):
                yield from _strings(value, schemas, seen)
            elif key == "propertyNames":
                yield {"type": "string", **value}


def test_no_request_text_may_hold_a_control_character(document: dict[str, Any]) -> None:
    """The request boundary refuses control characters in every text (the path, the query,
    bodies and their keys): the document says so for every string a request may carry."""
    schemas = document["components"]["schemas"]
    loose = []
    for path, method, operation in operations(document):
        parameters = [p.get("schema", {}) for p in operation.get("parameters", [])]
        bodies = [m["schema"] for m in operation.get("requestBody", {}).get("content", {}).values()]
        for schema in _strings(parameters + bodies, schemas, set()):
            if "enum" in schema or "const" in schema or schema.get("format") == "binary":
                continue
            pattern = schema.get("pattern")
            if pattern is None or re.search(pattern, "a\x01b"):
                loose.append(f"{method.upper()} {path}: {schema}")
    assert loose == []


def _parameter_schema(operation: dict[str, Any], name: str) -> dict[str, Any] | None:
    for parameter in operation.get("parameters", []):
        if parameter["name"] == name:
            schema: dict[str, Any] = parameter["schema"]
            return schema
    return None


def test_sort_grammar_is_documented_as_the_server_enforces_it(
    registry: PortsideServer, document: dict[str, Any]
) -> None:
    """Every ``sort`` parameter documents the fields it accepts as a pattern; the server takes
    each of them (ascending, descending, several) and refuses any other field with a 400."""
    checked = 0
    with registry.client() as client:
        for path, method, operation in operations(document):
            schema = _parameter_schema(operation, "sort")
            if schema is None:
                continue
            pattern = schema.get("pattern")
            assert pattern, f"{method.upper()} {path}: sort has no pattern"
            fields = re.search(r"-\?\(\?:([^)]*)\)", pattern)
            assert fields, pattern
            names = [name.replace("\\", "") for name in fields.group(1).split("|")]
            url = API + _fill(path)
            for value in [*names, f"-{names[0]},{names[-1]}"]:
                assert re.search(pattern, value), (path, value)
                response = client.request(method.upper(), url, params={"sort": value})
                assert response.status_code != 400, (path, value, response.text)
            assert not re.search(pattern, "no_such_field")
            response = client.request(method.upper(), url, params={"sort": "no_such_field"})
            assert response.status_code in (400, 404), (path, response.text)
            checked += 1
    assert checked >= 10


def test_q_grammar_is_documented(registry: PortsideServer, document: dict[str, Any]) -> None:
    """Every ``q`` filter documents its keys and term syntax as a pattern: what the pattern
    refuses (an unknown key, a term without ``=``) the server refuses with a 400."""
    checked = 0
    with registry.client() as client:
        for path, method, operation in operations(document):
            schema = _parameter_schema(operation, "q")
            if schema is None or path == "/search":  # /search's q is a free search text
                continue
            pattern = schema.get("pattern")
            assert pattern, f"{method.upper()} {path}: q has no pattern"
            for value in ("no_such_key=1", "justtext"):
                assert not re.search(pattern, value), (path, value)
                response = client.request(method.upper(), API + _fill(path), params={"q": value})
                assert response.status_code in (400, 404), (path, value, response.text)
            checked += 1
    assert checked >= 8


# (model, field, a value the server refuses, a value it takes): the document must tell them apart.
_FIELD_RULES = [
    ("UserCreationReq", "password", "alllowercase1", "Harbor12345"),
    ("UserCreationReq", "password", "Sh0rt", "Harbor12345"),
    ("PasswordReq", "new_password", "NODIGITSHERE", "Harbor12345"),
    ("UserCreationReq", "username", "a,b", "alice"),
    ("UserCreationReq", "username", " alice", "alice"),
    ("UserCreationReq", "email", "not-an-email", "alice@example.com"),
    ("UserProfile", "realname", "", "Alice"),
    ("UserProfile", "comment", "x" * 31, "x" * 30),
    ("ScheduleObj", "cron", "0 0 2 * *", "0 0 2 * * *"),
    ("ScheduleObj", "cron", "61 0 2 * * *", "0 */5 * * * ?"),
    ("RegistrationIn", "url", "ftp://scanner", "http://scanner:8080"),
    ("PingIn", "url", "http://", "https://scanner/"),
    ("LabelBody", "name", " label", "label"),
    ("UserGroupReq", "group_name", "   ", "developers"),
    ("RobotCreateBody", "name", "Bad Name", "ci-bot"),
    ("RobotSecBody", "secret", "alllowercase1", "Harbor12345"),
]


@pytest.mark.parametrize(("model", "field", "refused", "taken"), _FIELD_RULES)
def test_field_rules_the_server_checks_are_documented(
    document: dict[str, Any], model: str, field: str, refused: str, taken: str
) -> None:
    schema = document["components"]["schemas"][model]["properties"][field]
    validator = Draft202012Validator(schema)
    assert validator.is_valid(taken), (model, field, taken, schema)
    assert not validator.is_valid(refused), (model, field, refused, schema)


def test_a_custom_schedule_needs_its_cron(document: dict[str, Any]) -> None:
    validator = Draft202012Validator(document["components"]["schemas"]["ScheduleObj"])
    assert validator.is_valid({"type": "Daily", "cron": ""})
    assert validator.is_valid({"type": "Custom", "cron": "0 0 2 * * *"})
    assert not validator.is_valid({"type": "Custom", "cron": ""})


def test_enumerated_and_patterned_values_are_documented(document: dict[str, Any]) -> None:
    """Values the server takes only from a fixed set say so."""
    schemas = document["components"]["schemas"]
    assert schemas["RobotCreateBody"]["properties"]["level"]["enum"] == ["system", "project"]
    assert schemas["UserGroupReq"]["properties"]["group_type"]["enum"] == [2, None]
    hard = Draft202012Validator(schemas["QuotaUpdateReq"]["properties"]["hard"])
    assert hard.is_valid({"storage": -1}) and hard.is_valid({"storage": 0})
    assert not hard.is_valid({}) and not hard.is_valid({"storage": -2})
    assert not hard.is_valid({"storage": 1, "count": 1})
    color = Draft202012Validator(schemas["LabelBody"]["properties"]["color"])
    assert color.is_valid("#61717D") and not color.is_valid("red")
    cve = Draft202012Validator(schemas["AllowlistItem"]["properties"]["cve_id"])
    assert cve.is_valid("CVE-2024-0001") and not cve.is_valid("")
