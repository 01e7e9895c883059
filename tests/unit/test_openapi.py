"""The OpenAPI document: valid OpenAPI 3.1, one operation per route the app serves (no more, no fewer),
and the bodies the handlers build fit the response schemas it gives them."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest
import schemathesis
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from api import app, commands, openapi, problems, routes
from inference import models
from projections import views
from streams import messages as m
from streams.families import load as family_table
from webhooks import store

DOC = openapi.document(family_table())
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def routed() -> dict[tuple[str, str], str]:
    """(method, path) -> endpoint name, for every route of the routing table. Starlette answers HEAD
    wherever GET is, so HEAD counts only where it is documented (images, which clients HEAD)."""
    found = {}
    for mount in routes.routes():
        if mount.path in ("/", "/gallery"):  # the gallery page (api/gallery), not an API operation
            continue
        assert isinstance(mount, Mount)
        for route in mount.routes:
            assert isinstance(route, Route) and route.methods
            for method in route.methods:
                found[(method, mount.path + route.path)] = route.endpoint.__name__
    return found


def documented() -> dict[tuple[str, str], dict[str, Any]]:
    return {(method.upper(), path): op for path, item in DOC["paths"].items() for method, op in item.items()}


def fits(instance: Any, schema: dict[str, Any]) -> None:
    """Validate against a schema of the document, its references resolved within it."""
    jsonschema.Draft202012Validator({**DOC, **schema}, format_checker=jsonschema.FormatChecker()).validate(instance)


def response(path: str, method: str, status: int) -> dict[str, Any]:
    return dict(
        documented()[(method, openapi.BASE + path)]["responses"][str(status)]["content"]["application/json"]["schema"]
    )


def test_the_document_is_valid_openapi_3_1() -> None:
    schema = schemathesis.openapi.from_dict(DOC)
    schema.validate()  # against the OpenAPI 3.1 schema; raises naming what is wrong
    assert DOC["openapi"] == "3.1.0"
    labels = [result.ok().label for result in schema.get_all_operations()]
    assert len(labels) == len(documented()) > 20


def test_the_document_passes_the_field_s_own_validator() -> None:
    validate(DOC)  # openapi-spec-validator: the 3.1 schema and the spec's rules beyond it
    broken = {**DOC, "paths": {**DOC["paths"], "/x/{id}": {"get": {"responses": {"200": {"description": "x"}}}}}}
    with pytest.raises(OpenAPIValidationError, match="id"):  # a path parameter no operation declares
        validate(broken)


def test_every_route_is_documented_under_its_handlers_name_and_nothing_else_is() -> None:
    routes, docs = routed(), documented()
    missing = {key for key in routes if key[0] != "HEAD"} - set(docs)
    assert not missing, f"routes with no operation in the document: {sorted(missing)}"
    assert not set(docs) - set(routes), f"operations with no route: {sorted(set(docs) - set(routes))}"
    for key, op in docs.items():
        assert op["operationId"] == routes[key] + ("_head" if key[0] == "HEAD" else ""), key
        declared = {p["name"] for p in op.get("parameters", ()) if p["in"] == "path"}
        assert declared == set(re.findall(r"{(\w+)}", key[1])), key
        assert all(status.isdigit() for status in op["responses"]), key


def test_the_api_serves_it() -> None:
    served = TestClient(app.create_app()).get("/api/images/openapi.json")  # no lifespan: no stack needed
    assert served.status_code == 200 and served.json() == DOC


def test_request_bodies_are_the_validators_models_and_say_what_their_validators_check() -> None:
    body = DOC["components"]["schemas"]["CreateVariationBody"]
    assert body["additionalProperties"] is False and body["required"] == ["name", "families", "generation"]
    assert body["properties"]["families"]["items"]["enum"] == list(family_table().names)
    assert "openapi" in body["properties"]["name"]["not"]["enum"]
    fits(
        {"name": "hero-sunset", "families": ["square"], "generation": {"prompt": "a beach"}},
        {"$ref": "#/components/schemas/CreateVariationBody"},
    )
    with pytest.raises(jsonschema.ValidationError):  # the name the document itself is served under
        fits(
            {"name": "openapi", "families": ["square"], "generation": {"prompt": "a beach"}},
            {"$ref": "#/components/schemas/CreateVariationBody"},
        )


# what the handlers build, held to what the document says they answer


def test_an_accepted_command_a_problem_and_the_models_fit_their_schemas() -> None:
    command = m.RegenerateVariation(command_id=uuid.uuid4(), variation_id=m.variation_id("hero"))
    fits(commands.accepted(command, "regenerating", "hero"), response("/variations/{id}/regenerate", "POST", 202))
    problem = problems.problem(422, "name: bad", [{"field": "name", "message": "bad"}])
    fits(json.loads(problem.body), response("/variations", "POST", 422))
    listed = models.list_models()
    for model in listed:
        model |= {"loaded": False, "loadedBy": []}
    fits({"models": listed}, response("/models", "GET", 200))


def test_a_variation_row_and_a_subscription_row_fit_their_schemas() -> None:
    row = dict(
        id=m.variation_id("hero"),
        name="hero",
        category="",
        status="completed",
        prompt="p",
        negative_prompt="",
        seed=1,
        model="tiny",
        steps=2,
        guidance=4.0,
        priority="dx",
        families=["square"],
        round=1,
        error=None,
        requested_at=NOW,
        updated_at=NOW,
        completed_at=NOW,
        focal_point={"x": 0.5, "y": 0},
        focal_points={},
        variant_set="ab",
        variant=1,
    )
    fits({"items": [views._variation(row)], "total": 1, "limit": 20, "offset": 0}, response("/variations", "GET", 200))
    with pytest.raises(jsonschema.ValidationError):  # a field the document does not name is a violation
        fits(
            {"items": [views._variation(row) | {"priority": "dx"}], "total": 1, "limit": 20, "offset": 0},
            response("/variations", "GET", 200),
        )
    hook = store._subscription(
        dict(
            id=uuid.uuid4(),
            url="https://cms.example/hook",
            events=[],
            description="",
            active=True,
            inactive_reason=None,
            created_at=NOW,
        )
    )
    fits(hook, response("/webhooks/{id}", "GET", 200))
    fits(hook | {"secret": "s3cret"}, response("/webhooks", "POST", 201))
