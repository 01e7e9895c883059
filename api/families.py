"""GET /api/images/families: the family table in force, with every derivative's size and safe zones, for
clients that lay images out (the gallery's platform mocks, a CMS) without a copy of the table."""

from __future__ import annotations

from typing import Any

from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from api import endpoint as e
from api.responses import Shape
from streams.families import FamilyTable


class SafeZone(Shape):
    """Where the platform's UI covers the picture, in fractions of the derivative's width and height."""

    left: float
    top: float
    width: float
    height: float
    note: str


class TableDerivative(Shape):
    name: str
    width: int
    height: int
    format: str
    quality: int | None = Field(description="null: the configured quality of the format")
    safe_zones: list[SafeZone]


class TableFamily(Shape):
    name: str
    ratio: str
    width: int = Field(description="the master's width")
    height: int
    drawn_width: int = Field(description="the SDXL bucket the master is drawn at, then resized")
    drawn_height: int
    derivatives: list[TableDerivative]


class FamilyList(Shape):
    families: list[TableFamily]


def shown(table: FamilyTable) -> dict[str, Any]:
    return {
        "families": [
            {
                "name": f.name,
                "ratio": f.ratio,
                "width": f.width,
                "height": f.height,
                "drawnWidth": f.drawn_width,
                "drawnHeight": f.drawn_height,
                "derivatives": [
                    {
                        "name": d.name,
                        "width": d.width,
                        "height": d.height,
                        "format": d.format,
                        "quality": d.quality,
                        "safeZones": [
                            {"left": z.left, "top": z.top, "width": z.width, "height": z.height, "note": z.note}
                            for z in d.safe_zones
                        ],
                    }
                    for d in f.derivatives
                ],
            }
            for f in table
        ]
    }


async def list_families(request: Request) -> Response:
    """The family table in force: each family's ratio and master size, its derivatives' sizes and safe zones."""
    return JSONResponse(shown(request.app.state.families))


ENDPOINTS = (
    e.Endpoint(
        ("GET",),
        "/families",
        list_families,
        e.READ,
        "operations",
        "The family table: sizes and safe zones",
        {200: e.Answer("each family's ratio and master, its derivatives' sizes and safe zones", FamilyList)},
    ),
)
