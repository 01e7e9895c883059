"""The gallery's parts that need no browser: its files are served (and nothing else from its folder), `/`
leads there, and GET /families answers the family table as the OpenAPI document says it does."""

from __future__ import annotations

import jsonschema
from starlette.testclient import TestClient

from api import app, openapi
from api.families import shown
from api.gallery import HERE, SERVED
from streams.families import load as family_table
from streams.families import parse

DOC = openapi.document(family_table())


def client() -> TestClient:
    return TestClient(app.create_app())  # used without `with`: no lifespan, and neither route needs one


def test_the_page_is_served_with_its_own_files_only() -> None:
    c = client()
    home = c.get("/", follow_redirects=False)
    assert home.status_code == 307 and home.headers["location"] == "/gallery/"
    page = c.get("/gallery/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-cache"
    for name, kind in (("gallery.js", "text/javascript"), ("gallery.css", "text/css"), ("live.js", "text/javascript")):
        assert c.get(f"/gallery/{name}").headers["content-type"].startswith(kind), name
    for hidden in ("__init__.py", "__pycache__/", "../app.py", "..%2Fapp.py"):
        assert c.get(f"/gallery/{hidden}").status_code == 404, hidden
    # nothing on the page comes from elsewhere (no CDN, font or script of another site): it works offline
    for file in sorted(HERE.iterdir()):
        if file.suffix in SERVED:
            text = c.get(f"/gallery/{file.name}").text
            assert text == file.read_text() and "://" not in text and "@import" not in text, file.name


def test_the_family_table_is_answered_as_documented() -> None:
    r = client().get("/api/images/families")
    assert r.status_code == 200
    body = r.json()
    schema = DOC["paths"]["/api/images/families"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    jsonschema.Draft202012Validator({**DOC, **schema}).validate(body)
    story = next(d for f in body["families"] for d in f["derivatives"] if d["name"] == "instagram-story")
    assert (story["width"], story["height"]) == (1080, 1920)
    assert [(z["top"], z["height"]) for z in story["safeZones"]] == [(0.0, 0.14), (0.8, 0.2)]


def test_an_operator_s_table_is_the_one_shown() -> None:
    strip = {
        "name": "strip",
        "size": [600, 300],
        "format": "jpeg",
        "quality": 80,
        "safe_zones": [{"left": 0.9, "width": 0.1, "note": "logo"}],
    }
    table = parse(
        {
            "family": [
                {"name": "banner", "ratio": "2:1", "master": [1024, 512], "drawn": [1024, 512], "derivatives": [strip]}
            ]
        }
    )
    (family,) = shown(table)["families"]
    assert family | {"derivatives": []} == {
        "name": "banner",
        "ratio": "2:1",
        "width": 1024,
        "height": 512,
        "drawnWidth": 1024,
        "drawnHeight": 512,
        "derivatives": [],
    }
    assert family["derivatives"] == [
        {
            "name": "strip",
            "width": 600,
            "height": 300,
            "format": "jpeg",
            "quality": 80,
            "safeZones": [{"left": 0.9, "top": 0.0, "width": 0.1, "height": 1.0, "note": "logo"}],
        }
    ]
