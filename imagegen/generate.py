"""`imagegen generate`: submit a variation to a running api and wait for (or follow) its images."""

from __future__ import annotations

import argparse
import time

import httpx

from imagegen.config import settings

SAMPLE = {
    "name": "hero-sunset-beach",
    "category": "travel",
    "families": ["square", "landscape", "facebook-og"],
    "generation": {
        "prompt": "A golden sunset over a quiet beach, palm trees, warm light, wide angle",
        "negativePrompt": "text, watermark, blurry",
        "seed": 42,
        "inferenceSteps": 4,
        "guidanceScale": 5.0,
    },
    "isDxJob": False,
}


def submit(api_url: str, body: dict[str, object], timeout: float = 300.0) -> dict[str, object]:
    """POST a variation and wait until it is complete, partial or failed."""
    response = httpx.post(f"{api_url}/api/images/variations", json=body, timeout=30)
    if response.status_code != 202:
        raise SystemExit(f"refused ({response.status_code}): {response.text}")
    vid = response.json()["id"]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = httpx.get(f"{api_url}/api/images/variations/{vid}", timeout=10)
        if found.status_code == 200 and found.json()["status"] in ("completed", "partial", "failed", "cancelled"):
            return found.json()  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise SystemExit(f"variation {vid} did not finish in {timeout} s")


def print_variation(variation: dict[str, object]) -> None:
    print(f"\n{variation['name']} ({variation['id']}): {variation['status']}")
    for family in variation["families"]:  # type: ignore[attr-defined]
        print(f"  {family['name']:<12} {family['status']:<10} {family['publicUrl']}")
        for d in family["derivatives"]:
            print(f"    {d['name']:<20} {d['width']}x{d['height']:<6} {d['url']}")


def cmd_generate(args: argparse.Namespace) -> None:
    from imagegen.follow import follow

    body = dict(SAMPLE)
    body.update(name=args.name, families=args.families.split(","), category=args.category, isDxJob=args.dx)
    generation = {"prompt": args.prompt, "negativePrompt": args.negative_prompt, "model": args.model}
    given = (
        ("seed", args.seed),
        ("inferenceSteps", args.steps),
        ("guidanceScale", args.guidance),
        ("refine", args.refine),
    )
    for field, value in given:
        if value is not None:
            generation[field] = value
    body["generation"] = generation
    print_variation(follow(args.api, body) if args.follow else submit(args.api, body))


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    gen = sub.add_parser("generate", help="submit a variation and wait for its images")
    gen.add_argument("name")
    gen.add_argument("--prompt", required=True)
    gen.add_argument("--negative-prompt", default="")
    gen.add_argument("--families", default="square,landscape,portrait,hero,facebook-og")
    gen.add_argument("--category", default="")
    gen.add_argument("--model", default=settings().default_model)
    gen.add_argument("--seed", type=int)
    gen.add_argument("--steps", type=int, help="denoising steps (default: the model's)")
    gen.add_argument("--guidance", type=float, help="guidance scale (default: the model's)")
    gen.add_argument(
        "--refine", type=float, help="a hi-res pass at this img2img strength, e.g. 0.3 (default: the model's)"
    )
    gen.add_argument("--dx", action="store_true", help="a DX job: drawn before any normal job, even in peak hours")
    gen.add_argument("--follow", action="store_true", help="show each family's steps as it is drawn")
    gen.add_argument("--api", default=f"http://127.0.0.1:{settings().api_port}")
    gen.set_defaults(func=cmd_generate)
