"""The aspect families and their derivatives, as data: streams/families.toml, and an operator's file
(FAMILIES_FILE) that adds, changes or removes families and derivatives without code.

An override entry with a family's name changes only what it gives; its derivatives are merged by
name the same way; `remove = true` drops a family or a derivative. The merged table is validated as
a whole at start, and an error names the family, the derivative and the field that are wrong.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

DEFAULT_TABLE = Path(__file__).with_name("families.toml")
NAME_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$"
RATIO_TOLERANCE = 0.01  # the master's sides against the family's ratio
BUCKET_TOLERANCE = 0.05  # the SDXL bucket drawn at against the ratio: the resize may stretch this much

Format = Literal["webp", "avif", "jpeg"]
Size = tuple[int, int]


class FamilyTableError(ValueError):
    pass


@dataclass(frozen=True)
class Zone:
    """Where a platform's UI covers a derivative, in fractions of its width and height."""

    left: float = 0.0
    top: float = 0.0
    width: float = 1.0
    height: float = 1.0
    note: str = ""


@dataclass(frozen=True)
class Derivative:
    name: str
    width: int
    height: int
    format: Format = "webp"
    quality: int | None = None  # None: the configured quality of the format
    safe_zones: tuple[Zone, ...] = ()


@dataclass(frozen=True)
class Family:
    name: str
    ratio: str
    width: int
    height: int
    drawn_width: int
    drawn_height: int
    derivatives: tuple[Derivative, ...]

    def derivative(self, name: str) -> Derivative | None:
        return next((d for d in self.derivatives if d.name == name), None)


@dataclass(frozen=True)
class FamilyTable:
    families: tuple[Family, ...]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.families)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.families)

    def get(self, name: str) -> Family:
        for family in self.families:
            if family.name == name:
                return family
        raise KeyError(name)

    def subset(self, names: list[str] | tuple[str, ...]) -> tuple[Family, ...]:
        return tuple(self.get(n) for n in names)


# --- the file format, validated by pydantic ------------------------------------------------------


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Zone(_Entry):
    left: float = Field(default=0.0, ge=0, lt=1)
    top: float = Field(default=0.0, ge=0, lt=1)
    width: float = Field(default=1.0, gt=0, le=1)
    height: float = Field(default=1.0, gt=0, le=1)
    note: str = ""

    @model_validator(mode="after")
    def _inside(self) -> _Zone:
        if self.left + self.width > 1 + 1e-9 or self.top + self.height > 1 + 1e-9:
            raise ValueError("a safe zone must lie inside the image (left + width <= 1, top + height <= 1)")
        return self


class _Derivative(_Entry):
    name: str = Field(pattern=NAME_PATTERN)
    size: tuple[int, int]
    format: Format = "webp"
    quality: int | None = Field(default=None, ge=1, le=100)
    safe_zones: list[_Zone] = []

    @model_validator(mode="after")
    def _sized(self) -> _Derivative:
        _check_size(self.size)
        return self


class _Family(_Entry):
    name: str = Field(pattern=NAME_PATTERN)
    ratio: str = Field(pattern=r"^\d+(\.\d+)?:\d+(\.\d+)?$")
    master: tuple[int, int]
    drawn: tuple[int, int]
    derivatives: list[_Derivative] = []

    @model_validator(mode="after")
    def _consistent(self) -> _Family:
        _check_size(self.master)
        _check_size(self.drawn)
        if self.drawn[0] % 8 or self.drawn[1] % 8:
            raise ValueError(f"drawn {list(self.drawn)}: SDXL draws at multiples of 8")
        a, b = (float(x) for x in self.ratio.split(":"))
        ratio = a / b
        for field, (width, height), tolerance in (
            ("master", self.master, RATIO_TOLERANCE),
            ("drawn", self.drawn, BUCKET_TOLERANCE),
        ):
            if abs(width / height - ratio) > tolerance * ratio:
                raise ValueError(f"{field} {width}x{height} is {width / height:.3f}:1, not the ratio {self.ratio}")
        return self


def _check_size(size: tuple[int, int]) -> None:
    if not all(8 <= side <= 8192 for side in size):
        raise ValueError(f"size {list(size)} must be [width, height], each in 8..8192")


# --- parsing and merging -------------------------------------------------------------------------


def parse(data: dict[str, Any], source: str = "family table") -> FamilyTable:
    entries = data.get("family")
    if not isinstance(entries, list) or not entries:
        raise FamilyTableError(f"{source}: no [[family]] entries")
    families: list[Family] = []
    seen: dict[str, str] = {}
    for raw in entries:
        name = raw.get("name") if isinstance(raw, dict) else None
        if not isinstance(name, str) or not name:
            raise FamilyTableError(f"{source}: a family has no name: {raw!r}")
        try:
            entry = _Family.model_validate(raw)
        except ValidationError as exc:
            raise FamilyTableError(f"{source}: family {name!r}: {_describe(exc, raw)}") from None
        family = _family(entry)
        for owner, item in [(f"family {name!r}", name), *((f"family {name!r}", d.name) for d in family.derivatives)]:
            if item in seen:
                raise FamilyTableError(f"{source}: {owner}: the name {item!r} is already used by {seen[item]}")
            seen[item] = owner
        families.append(family)
    return FamilyTable(tuple(families))


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """`base`'s families with `override`'s applied (see the module docstring)."""
    merged = {f["name"]: dict(f) for f in base.get("family", [])}
    for entry in override.get("family", []):
        name = entry.get("name")
        if entry.get("remove"):
            merged.pop(name, None)
            continue
        family = {**merged.get(name, {}), **{k: v for k, v in entry.items() if k != "derivatives"}}
        derivatives = {d["name"]: d for d in merged.get(name, {}).get("derivatives", [])}
        for d in entry.get("derivatives", []):
            if d.get("remove"):
                derivatives.pop(d.get("name"), None)
            else:
                derivatives[d.get("name")] = {**derivatives.get(d.get("name"), {}), **d}
        family["derivatives"] = list(derivatives.values())
        merged[name] = family
    return {"family": list(merged.values())}


@cache
def load(path: Path = DEFAULT_TABLE, override: Path | None = None) -> FamilyTable:
    """The table at `path`, with the operator's `override` file applied when given."""
    data = _read(path)
    source = str(path)
    if override is not None:
        data = merge(data, _read(override))
        source = f"{path} with {override}"
    return parse(data, source)


def _read(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise FamilyTableError(f"{path}: {exc}") from None


def _family(entry: _Family) -> Family:
    return Family(
        name=entry.name,
        ratio=entry.ratio,
        width=entry.master[0],
        height=entry.master[1],
        drawn_width=entry.drawn[0],
        drawn_height=entry.drawn[1],
        derivatives=tuple(
            Derivative(
                name=d.name,
                width=d.size[0],
                height=d.size[1],
                format=d.format,
                quality=d.quality,
                safe_zones=tuple(Zone(z.left, z.top, z.width, z.height, z.note) for z in d.safe_zones),
            )
            for d in entry.derivatives
        ),
    )


def _describe(exc: ValidationError, raw: dict[str, Any]) -> str:
    """pydantic's errors with list positions turned into the derivative names they point at."""
    parts = []
    for error in exc.errors():
        where: list[str] = []
        loc = list(error["loc"])
        if loc[:1] == ["derivatives"] and len(loc) > 1 and isinstance(loc[1], int):
            derivative = raw["derivatives"][loc[1]]
            name = derivative.get("name") if isinstance(derivative, dict) else None
            where.append(f"derivative {name!r}" if name else f"derivative #{loc[1] + 1}")
            loc = loc[2:]
        if loc:
            where.append(".".join(str(p) for p in loc))
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{', '.join(where)}: {message}" if where else message)
    return "; ".join(parts)
