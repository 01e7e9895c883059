"""An SEO service fed by imagegen's public domain events: how another service integrates.

It follows `imagegen.domain-events` (the public contract, docs/asyncapi.json) in its own consumer
group and keeps, per variation, the images a page's social cards need: `og:image` (1.91:1, 1200x630)
and `twitter:image` (2:1 for a large card), with their sizes and types. It prints the `<meta>` tags for
a variation once its images are there.

For a variant set (an A/B test) it prints the tags at the set's stable URLs, which serve whichever
variant won last, with the winner's sizes: a page points at them once. It prints them again on each
choice of a winner (`IMAGE_SET_WINNER_CHOSEN`), saying which variant won and why; the URLs stay the
same, the sizes are the new winner's. The index lives in memory, so each run reads the log from the
start and commits no offsets: the last tags it printed are always the current winner's.

    python examples/seo_consumer.py hero-sunset-beach                 # wait, print the tags, exit
    python examples/seo_consumer.py hero-sunset-beach --alt "Sunset"  # with alt text
    python examples/seo_consumer.py --set ab-kites                    # the winner's tags, then each new one
    python examples/seo_consumer.py --set ab-kites --until-choice 2   # exit once the set's 2nd choice is shown
    KAFKA_BOOTSTRAP_SERVERS=host:9092 python examples/seo_consumer.py my-banner

Delivery is at-least-once: applying an event twice changes nothing (the state is keyed by image
name). A message it cannot read is logged and skipped; it never stops the consumer.
"""

from __future__ import annotations

import argparse
import asyncio
import html
import logging
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer

from streams import codec, domain_events
from streams import messages as m

log = logging.getLogger("seo")
TOPIC = "imagegen.domain-events"
# the derivative each tag prefers, best first (imagegen's default family table, ../shared/FAMILIES.md)
OG_IMAGE = ("og-image", "facebook-link", "linkedin-share", "banner", "og-square")
TWITTER_LARGE = ("x-large-card", "og-image", "facebook-link", "banner")
TWITTER_SQUARE = ("twitter-card", "og-square", "profile")
CONCLUDED = ("completed", "partial", "failed", "cancelled")


@dataclass
class Page:
    """What the SEO service knows of one variation, or of one set: its winner's images at the set's URLs."""

    images: dict[str, domain_events.ImageRef] = field(default_factory=dict)
    status: str = "generating"  # a set's says which variant won last, and why

    def first(self, names: tuple[str, ...]) -> tuple[str, domain_events.ImageRef] | None:
        return next(((n, self.images[n]) for n in names if n in self.images), None)


class SeoIndex:
    def __init__(self) -> None:
        self.pages: dict[uuid.UUID, Page] = {}  # by variation id, and a set's by the set's id

    def apply(self, event: domain_events.DomainEvent) -> None:
        page = self.pages.setdefault(event.variation_id, Page())
        match event:
            case domain_events.ImageVariationStarted():
                page.status = "generating"  # a regenerate keeps the URLs: the files are replaced in place
            case domain_events.ImageFamilyCompleted() as e:
                page.images.update(e.images)
            case domain_events.ImageVariationCompleted():
                page.status = "completed"
            case domain_events.ImageVariationPartial():
                page.status = "partial"
            case domain_events.ImageVariationFailed():
                page.status = "failed"
            case domain_events.ImageVariationCancelled():
                page.status = "cancelled"  # the families drawn before keep their images
            case domain_events.ImageSetWinnerChosen() as e:
                # a later choice replaces the page: the same stable URLs, the new winner's sizes and types
                images = {name: e.images[name].model_copy(update={"url": url}) for name, url in e.set_urls.items()}
                won = f"variant {e.variant} ({e.variation_name}) won, choice {e.choice}: {e.reason or 'no reason'}"
                self.pages[e.set_id] = Page(images, won)

    def meta_tags(self, variation_id: uuid.UUID, alt: str = "") -> list[str]:
        page = self.pages.get(variation_id)
        if page is None:
            return []
        tags: list[tuple[str, str, str]] = []
        if og := page.first(OG_IMAGE):
            tags += _image_tags("property", "og:image", og[1])
            if alt:
                tags.append(("property", "og:image:alt", alt))
        if large := page.first(TWITTER_LARGE):
            tags += [("name", "twitter:card", "summary_large_image"), ("name", "twitter:image", large[1].url)]
        elif square := page.first(TWITTER_SQUARE):
            tags += [("name", "twitter:card", "summary"), ("name", "twitter:image", square[1].url)]
        if alt and (large or page.first(TWITTER_SQUARE)):
            tags.append(("name", "twitter:image:alt", alt))
        return [f'<meta {attr}="{name}" content="{html.escape(value)}">' for attr, name, value in tags]


def _image_tags(attr: str, name: str, image: domain_events.ImageRef) -> list[tuple[str, str, str]]:
    tags = [(attr, name, image.url)]
    if image.width and image.height:
        tags += [(attr, f"{name}:width", str(image.width)), (attr, f"{name}:height", str(image.height))]
    if image.content_type:
        tags.append((attr, f"{name}:type", image.content_type))
    return tags


def print_tags(index: SeoIndex, key: uuid.UUID, name: str, alt: str) -> None:
    print(f"<!-- {name}: {html.escape(index.pages[key].status)} -->")
    print("\n".join(index.meta_tags(key, alt)), flush=True)  # flushed: a following run prints as it goes


async def follow(
    servers: str, index: SeoIndex, done: Callable[[domain_events.DomainEvent], bool], group: str = "seo-example"
) -> None:
    """Apply every domain event to `index`, from the start of the log, until `done(event)`, asked once
    each is applied, says so."""
    consumer = AIOKafkaConsumer(
        TOPIC, bootstrap_servers=servers, group_id=group, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        async for record in consumer:
            try:
                event = codec.decode_domain_event(record.value)
            except codec.UndecodableMessage as exc:
                log.warning("skipping %s[%d]@%d: %s", record.topic, record.partition, record.offset, exc)
                continue
            index.apply(event)
            if done(event):
                return
    finally:
        await consumer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("variation", nargs="?", help="the variation's name")
    which.add_argument("--set", help="a variant set's name: its winner's tags at the set's URLs, on each choice")
    parser.add_argument("--until-choice", type=int, help="with --set: exit once the set's Nth choice is shown")
    parser.add_argument("--alt", default="", help="alt text for the images")
    parser.add_argument("--group", default="seo-example", help="the consumer group")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds; a set without --until-choice: none")
    args = parser.parse_args()
    if args.until_choice is not None and not args.set:
        parser.error("--until-choice goes with --set")
    servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    index = SeoIndex()
    if args.variation:
        variation = m.variation_id(args.variation)  # ids are uuid5 of the name, in imagegen's namespace

        def concluded(_: domain_events.DomainEvent) -> bool:
            return index.pages.get(variation, Page()).status in CONCLUDED

        asyncio.run(asyncio.wait_for(follow(servers, index, concluded, args.group), args.timeout))
        print_tags(index, variation, args.variation, args.alt)
        return
    set_id = m.set_id(args.set)  # the set's pages and choices are keyed by its id

    def shown(event: domain_events.DomainEvent) -> bool:
        if not (isinstance(event, domain_events.ImageSetWinnerChosen) and event.set_id == set_id):
            return False
        print_tags(index, set_id, args.set, args.alt)
        return args.until_choice is not None and event.choice >= args.until_choice

    timeout = args.timeout if args.until_choice is not None else None  # otherwise it follows forever
    asyncio.run(asyncio.wait_for(follow(servers, index, shown, args.group), timeout))


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    main()
