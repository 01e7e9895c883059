"""The aspect families and their derivatives, as data (streams/families.toml)."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DEFAULT_TABLE = Path(__file__).with_name("families.toml")


class FamilyTableError(ValueError):
    pass


@dataclass(frozen=True)
class Derivative:
    name: str
    width: int
    height: int


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


def _size(entry: str, value: object) -> tuple[int, int]:
    if not isinstance(value, list) or len(value) != 2 or not all(isinstance(v, int) and 8 <= v <= 8192 for v in value):
        raise FamilyTableError(f"{entry}: size must be [width, height] in 8..8192, got {value!r}")
    return value[0], value[1]


def parse(data: dict[str, object], source: str = "family table") -> FamilyTable:
    entries = data.get("family")
    if not isinstance(entries, list) or not entries:
        raise FamilyTableError(f"{source}: no [[family]] entries")
    families: list[Family] = []
    seen: set[str] = set()
    for raw in entries:
        name = raw.get("name")
        if not isinstance(name, str) or not name:
            raise FamilyTableError(f"{source}: a family has no name: {raw!r}")
        where = f"{source}: family {name!r}"
        width, height = _size(f"{where} master", raw.get("master"))
        drawn_width, drawn_height = _size(f"{where} drawn", raw.get("drawn"))
        if drawn_width % 8 or drawn_height % 8:
            raise FamilyTableError(f"{where}: drawn size must be multiples of 8")
        derivatives = []
        for d in raw.get("derivatives", []):
            dname = d.get("name")
            if not isinstance(dname, str) or not dname:
                raise FamilyTableError(f"{where}: a derivative has no name")
            dw, dh = _size(f"{where} derivative {dname!r}", d.get("size"))
            derivatives.append(Derivative(dname, dw, dh))
        for n in [name, *(d.name for d in derivatives)]:
            if n in seen:
                raise FamilyTableError(f"{where}: name {n!r} is used twice in the table")
            seen.add(n)
        families.append(
            Family(name, str(raw.get("ratio", "")), width, height, drawn_width, drawn_height, tuple(derivatives))
        )
    return FamilyTable(tuple(families))


@cache
def load(path: Path = DEFAULT_TABLE) -> FamilyTable:
    with path.open("rb") as f:
        return parse(tomllib.load(f), source=str(path))
