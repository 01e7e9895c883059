"""The family table as data: the default one, an operator's override, and errors that name the entry."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from streams import families
from streams.families import DEFAULT_TABLE, FamilyTableError, Zone, merge, parse


def default() -> dict[str, Any]:
    with DEFAULT_TABLE.open("rb") as f:
        return tomllib.load(f)


def test_the_default_table_is_the_one_in_families_md() -> None:
    table = families.load()
    assert table.names == ("square", "landscape", "portrait", "hero", "facebook-og")
    story = table.get("portrait").derivative("instagram-story")
    assert story is not None and (story.width, story.height, story.format) == (1080, 1920, "webp")
    assert [(z.top, z.height) for z in story.safe_zones] == [(0.0, 0.14), (0.80, 0.20)]
    youtube = table.get("landscape").derivative("youtube-thumbnail")
    assert youtube is not None and youtube.safe_zones == (Zone(0.85, 0.88, 0.15, 0.12, "duration badge"),)
    names = [n for f in table for n in (f.name, *(d.name for d in f.derivatives))]
    assert len(names) == len(set(names)) == 22


def test_an_operator_file_adds_changes_and_removes_without_code(tmp_path: Path) -> None:
    override = tmp_path / "families.toml"
    override.write_text(
        """
[[family]]  # a new family
name = "skyscraper"
ratio = "1:4"
master = [512, 2048]
drawn = [512, 2048]
derivatives = [{ name = "ad-skyscraper", size = [160, 600], format = "jpeg", quality = 90 }]

[[family]]  # a derivative added, one resized, one removed; the rest as it was
name = "square"
derivatives = [
    { name = "avatar", size = [128, 128], format = "avif" },
    { name = "twitter-card", size = [900, 900] },
    { name = "profile", remove = true },
]

[[family]]
name = "hero"
remove = true
"""
    )
    table = families.load(DEFAULT_TABLE, override)
    assert table.names == ("square", "landscape", "portrait", "facebook-og", "skyscraper")
    square = table.get("square")
    assert [(d.name, d.width, d.format) for d in square.derivatives] == [
        ("og-square", 1200, "webp"),
        ("twitter-card", 900, "webp"),
        ("instagram-post", 1080, "webp"),
        ("avatar", 128, "avif"),
    ]
    ad = table.get("skyscraper").derivative("ad-skyscraper")
    assert ad is not None and (ad.format, ad.quality) == ("jpeg", 90)


def broken(change: Any) -> str:
    data = copy.deepcopy(default())
    change(data["family"])
    with pytest.raises(FamilyTableError) as error:
        parse(data, "table.toml")
    return str(error.value)


def test_errors_name_the_family_the_derivative_and_the_field() -> None:
    def twice(fs: list[dict[str, Any]]) -> None:
        fs[1]["derivatives"][0]["name"] = "og-square"

    assert broken(twice) == ("table.toml: family 'landscape': the name 'og-square' is already used by family 'square'")

    def derivative_named_like_a_family(fs: list[dict[str, Any]]) -> None:
        fs[0]["derivatives"][0]["name"] = "hero"

    assert "the name 'hero' is already used" in broken(derivative_named_like_a_family)

    def ratio(fs: list[dict[str, Any]]) -> None:
        fs[3]["master"] = [2560, 1200]

    assert broken(ratio) == "table.toml: family 'hero': master 2560x1200 is 2.133:1, not the ratio 21:9"

    def size(fs: list[dict[str, Any]]) -> None:
        fs[2]["derivatives"][1]["size"] = [1080, 0]

    assert broken(size).startswith("table.toml: family 'portrait': derivative 'instagram-portrait': size [1080, 0]")

    def typo(fs: list[dict[str, Any]]) -> None:
        fs[1]["derivatives"][1]["safe_zone"] = []

    assert broken(typo) == (
        "table.toml: family 'landscape': derivative 'youtube-thumbnail', safe_zone: Extra inputs are not permitted"
    )

    def zone_outside(fs: list[dict[str, Any]]) -> None:
        fs[2]["derivatives"][0]["safe_zones"][1]["height"] = 0.3

    assert "derivative 'instagram-story', safe_zones.1: a safe zone must lie inside the image" in broken(zone_outside)

    def format_(fs: list[dict[str, Any]]) -> None:
        fs[4]["derivatives"][0]["format"] = "gif"

    assert "family 'facebook-og': derivative 'og-image', format: Input should be 'webp', 'avif' or 'jpeg'" in broken(
        format_
    )


def test_a_bad_operator_file_is_named(tmp_path: Path) -> None:
    override = tmp_path / "ops.toml"
    override.write_text('[[family]]\nname = "square"\nderivatives = [{ name = "x", size = [10] }]\n')
    with pytest.raises(FamilyTableError, match=r"ops.toml: family 'square': derivative 'x', size"):
        families.load(DEFAULT_TABLE, override)
    override.write_text("[[family]\n")
    with pytest.raises(FamilyTableError, match=r"ops.toml: "):
        families.load(DEFAULT_TABLE, override)


def test_merging_keeps_the_base_untouched() -> None:
    base = default()
    before = copy.deepcopy(base)
    merge(base, {"family": [{"name": "square", "derivatives": [{"name": "profile", "size": [256, 256]}]}]})
    assert base == before


def test_a_service_does_not_start_on_a_bad_operator_table(tmp_path: Path) -> None:
    override = tmp_path / "ops.toml"
    override.write_text('[[family]]\nname = "square"\nderivatives = [{ name = "profile", size = [512, 0] }]\n')
    env = {**os.environ, "FAMILIES_FILE": str(override)}
    ran = subprocess.run([sys.executable, "-m", "imagegen.cli", "worker"], env=env, capture_output=True, text=True)
    assert ran.returncode == 1
    assert ran.stderr.strip().endswith(
        "ops.toml: family 'square': derivative 'profile': size [512, 0] must be [width, height], each in 8..8192"
    )
