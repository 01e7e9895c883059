"""An SEO service follows an A/B test's winner on the running stack: `examples/seo_consumer.py --set`
prints the set's meta tags at its stable URLs, with the winner's sizes, and prints them again, naming
the new winner and why, on each choice. The URLs never change, so a page points at them once."""

from __future__ import annotations

import httpx
import pyvips

from tests.builders import create_body, generation_body
from tests.e2e.test_http import seo_consumer
from tests.e2e.test_variant_sets import choose, chosen, settled

SET = "seo-ab-kites"


def test_an_seo_service_prints_a_sets_tags_at_its_stable_urls_and_again_on_each_choice(
    api: httpx.Client, services, stack
) -> None:
    body = create_body(SET, generation_body("kites over a windy beach", 900), families=["facebook-og"], variants=2)
    assert api.post("/api/images/variations", json=body).status_code == 202
    settled(api, lambda s: s["statuses"] == {"completed": 2}, name=SET)

    # variant 1 wins, then variant 2 replaces it
    assert choose(api, SET, 1, "first week").status_code == 202
    chosen(api, SET, 1)
    assert choose(api, SET, 2, "CTR 5.0 % vs 3.9 %").status_code == 202
    chosen(api, SET, 2)

    # started afterwards, the SEO service reads the log from the start: both choices, the current last
    printed = seo_consumer(stack, "--set", SET, "--until-choice", "2")
    stable = f"{services.api_url}/api/images/sets/{SET}"
    tags = [  # the same both times: the set's URLs, and both winners' og-image is 1200x630
        f'<meta property="og:image" content="{stable}/og-image">',
        '<meta property="og:image:width" content="1200">',
        '<meta property="og:image:height" content="630">',
        '<meta property="og:image:type" content="image/webp">',
        '<meta name="twitter:card" content="summary_large_image">',
        f'<meta name="twitter:image" content="{stable}/og-image">',
    ]
    assert printed.splitlines() == [
        f"<!-- {SET}: variant 1 ({SET}-v1) won, choice 1: first week -->",
        *tags,
        f"<!-- {SET}: variant 2 ({SET}-v2) won, choice 2: CTR 5.0 % vs 3.9 % -->",
        *tags,
    ]

    # the URL the tags name serves the last winner, at the size they say
    served = api.get(f"{stable}/og-image")
    assert served.status_code == 200 and served.headers["x-variant"] == "2"
    image = pyvips.Image.new_from_buffer(served.content, "")
    assert (image.width, image.height) == (1200, 630)
