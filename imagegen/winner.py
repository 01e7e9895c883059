"""`imagegen winner SET VARIANT`: choose an A/B set's winner from a terminal, through the api, and print
the set's stable URLs once the choice is recorded (what a page's meta tags point at)."""

from __future__ import annotations

import argparse
import time
from typing import Any

import httpx

from imagegen.config import settings


def choose(api_url: str, name: str, variant: int, reason: str, timeout: float = 60.0) -> dict[str, Any]:
    """POST the choice and wait until the set shows it; the set as `GET /sets/{name}` then shows it."""
    where = f"{api_url}/api/images/sets/{name}"
    before = httpx.get(where, timeout=10)
    if before.status_code != 200:
        raise SystemExit(f"imagegen: no set {name!r} ({before.status_code}): {before.json().get('message', '')}")
    so_far = len(before.json()["choices"])
    response = httpx.post(f"{where}/winner", json={"variant": variant, "reason": reason}, timeout=30)
    if response.status_code != 202:
        raise SystemExit(f"imagegen: refused ({response.status_code}): {response.json().get('message', response.text)}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = httpx.get(where, timeout=10).json()
        if len(found["choices"]) > so_far:
            return found  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise SystemExit(f"imagegen: the choice is on the log, but the set did not show it in {timeout} s")


def cmd_winner(args: argparse.Namespace) -> None:
    found = choose(args.api, args.set, args.variant, args.reason)
    w = found["winner"]
    print(f"{args.set}: variant {w['variant']} ({w['name']}, round {w['round']}) won, choice {w['choice']}")
    for image, url in w["setUrls"].items():
        print(f"  {image:<20} {url}")


def add_commands(sub: Any) -> None:
    win = sub.add_parser("winner", help="choose an A/B set's winner; print the set's stable URLs")
    win.add_argument("set", help="the set's name")
    win.add_argument("variant", type=int, help="the winning variant's place in the set, from 1")
    win.add_argument("--reason", default="", help="why it won, kept with the choice (e.g. the test's result)")
    win.add_argument("--api", default=f"http://127.0.0.1:{settings().api_port}")
    win.set_defaults(func=cmd_winner)
