"""Webhook signatures, as a receiver checks them: what was signed passes; anything altered, signed
with another secret, or replayed late is refused."""

import hashlib
import hmac
import time
from pathlib import Path

import pytest

from webhooks.dispatcher import backoff
from webhooks.signing import InvalidSignature, sign, verify

SECRET = "whsec-for-tests-0123456789"
BODY = b'{"type":"IMAGE_VARIATION_COMPLETED","variationId":"8d6f0c1e-0000-5000-8000-000000000000"}'
T = 1_780_000_000


def test_the_header_is_hmac_sha256_of_timestamp_dot_body_so_any_language_can_check_it():
    expected = hmac.new(SECRET.encode(), f"{T}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, BODY, T) == f"t={T},v1={expected}"


def test_a_signed_body_verifies_and_gives_its_timestamp():
    assert verify(SECRET, BODY, sign(SECRET, BODY, T), now=T + 5) == T
    assert verify(SECRET, BODY, sign(SECRET, BODY)) > 0  # signed now, checked now


@pytest.mark.parametrize(
    ("body", "header", "why"),
    [
        (BODY.replace(b"COMPLETED", b"FAILED"), sign(SECRET, BODY, T), "no v1 signature matches"),  # body altered
        (BODY + b" ", sign(SECRET, BODY, T), "no v1 signature matches"),  # even by a byte
        (BODY, sign("another-secret-0123456789", BODY, T), "no v1 signature matches"),
        (BODY, sign(SECRET, BODY, T).replace(f"t={T}", f"t={T + 60}"), "no v1 signature matches"),  # fresher t
        (BODY, f"t={T}", "no v1 signature matches"),
        (BODY, sign(SECRET, BODY, T).replace(f"t={T},", ""), "no timestamp"),
        (BODY, "", "no timestamp"),
    ],
)
def test_a_tampered_or_foreign_signature_is_refused(body, header, why):
    with pytest.raises(InvalidSignature, match=why):
        verify(SECRET, body, header, now=T)


def test_a_replay_outside_the_tolerance_is_refused_even_with_a_valid_signature():
    header = sign(SECRET, BODY, T)
    assert verify(SECRET, BODY, header, now=T + 299) == T
    with pytest.raises(InvalidSignature, match="outside the 300 s tolerance"):
        verify(SECRET, BODY, header, now=T + 301)  # captured and sent again five minutes later
    with pytest.raises(InvalidSignature, match="outside"):
        verify(SECRET, BODY, header, now=T - 3600)  # from the future
    assert verify(SECRET, BODY, header, tolerance_s=3600, now=T + 3000) == T


def test_while_a_secret_rolls_over_one_matching_signature_of_several_is_enough():
    old = sign("the-old-secret-0123456789", BODY, T)
    both = f"{sign(SECRET, BODY, T)},{old.split(',')[1]}"
    assert verify(SECRET, BODY, both, now=T) == T
    assert verify("the-old-secret-0123456789", BODY, both, now=T) == T


def test_retries_back_off_exponentially_with_up_to_a_quarter_of_jitter_and_a_cap():
    for attempt, nominal in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (12, 60.0), (40, 60.0)]:
        delays = [backoff(attempt, base_s=1.0, cap_s=60.0) for _ in range(200)]
        assert all(nominal <= d <= nominal * 1.25 for d in delays), (attempt, min(delays), max(delays))
        assert max(delays) - min(delays) > nominal * 0.1  # spread out, not all at once


def test_the_readme_s_few_lines_of_python_verify_what_imagegen_signs():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    snippet = readme.split("## Webhooks", 1)[1].split("```python\n", 1)[1].split("```", 1)[0]
    scope: dict = {}
    exec(snippet, scope)
    readme_verify = scope["verify"]
    assert readme_verify(SECRET, BODY, sign(SECRET, BODY))
    assert not readme_verify(SECRET, BODY + b" ", sign(SECRET, BODY))
    assert not readme_verify("another-secret-0123456789", BODY, sign(SECRET, BODY))
    assert not readme_verify(SECRET, BODY, sign(SECRET, BODY, int(time.time()) - 301))
