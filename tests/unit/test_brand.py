"""The brand policy, told as stories: blocked terms rejected by the aggregate, its negative prompt on
every job and in every drawing, with no I/O."""

from __future__ import annotations

from streams import domain
from streams import messages as m
from streams.brand import BrandPolicy, negative_prompt
from tests.unit.test_domain import GEN, NOW, create, failed

POLICY = BrandPolicy.configured(" Rival Cola , gore,, gore ", "logo, watermark")


def test_terms_are_read_folded_and_deduplicated():
    assert POLICY.blocked_terms == ("rival cola", "gore")
    assert BrandPolicy.configured("", "").blocked_terms == ()


def test_a_blocked_term_is_found_as_a_whole_word_whatever_its_case_width_or_spacing():
    assert POLICY.blocked_in("A can of RIVAL   cola on the beach") == ["rival cola"]
    assert POLICY.blocked_in("\uff27\uff2f\uff32\uff25 everywhere")  # full-width letters == ["gore"]
    assert POLICY.blocked_in("gore, and rival cola") == ["rival cola", "gore"]
    assert POLICY.blocked_in("a gorey film poster") == []  # a longer word is not the term
    assert POLICY.blocked_in("rivalcola") == []


def test_a_create_with_a_blocked_term_is_rejected_with_the_terms_named_and_nothing_is_drawn():
    cmd = create(gen=GEN.model_copy(update={"prompt": "kids drinking Rival Cola"}))
    state, out = domain.handle(None, cmd, NOW, policy=POLICY)
    assert state is None
    [rejected] = out
    assert isinstance(rejected, m.VariationRejected) and rejected.command_id == cmd.command_id
    assert rejected.reason == "the prompt has terms the brand policy blocks: ['rival cola']"


def test_every_job_carries_the_policy_s_negative_prompt_through_create_retry_and_regenerate():
    state, out = domain.handle(None, create(), NOW, policy=POLICY)
    jobs = [o for o in out if isinstance(o, m.GenerateFamily)]
    assert len(jobs) == 3 and {j.brand_negative_prompt for j in jobs} == {"logo, watermark"}
    assert all(j.generation == GEN for j in jobs)  # the variation's own parameters stay as asked
    for job in jobs:
        state, out = domain.handle(state, failed(job), NOW, policy=POLICY)
    retry = m.RetryFamily(command_id=m.derive_id("retry"), variation_id=jobs[0].variation_id, family="square")
    state, out = domain.handle(state, retry, NOW, policy=POLICY)
    assert [o.brand_negative_prompt for o in out if isinstance(o, m.GenerateFamily)] == ["logo, watermark"]
    regenerate = m.RegenerateVariation(command_id=m.derive_id("again"), variation_id=jobs[0].variation_id)
    _, out = domain.handle(state, regenerate, NOW, policy=POLICY)
    assert [o.brand_negative_prompt for o in out if isinstance(o, m.GenerateFamily)] == ["logo, watermark"] * 3


def test_without_a_policy_jobs_are_as_before():
    _, out = domain.handle(None, create(), NOW)
    assert all(o.brand_negative_prompt == "" for o in out if isinstance(o, m.GenerateFamily))


def test_the_drawing_s_negative_prompt_is_the_variation_s_then_the_policy_s():
    _, out = domain.handle(None, create(gen=GEN.model_copy(update={"negative_prompt": "text "})), NOW, policy=POLICY)
    job = next(o for o in out if isinstance(o, m.GenerateFamily))
    assert negative_prompt(job) == "text, logo, watermark"
    assert negative_prompt(job.model_copy(update={"generation": GEN})) == "logo, watermark"
    own = GEN.model_copy(update={"negative_prompt": " x "})
    plain = job.model_copy(update={"brand_negative_prompt": "", "generation": own})
    assert negative_prompt(plain) == " x "  # no policy: drawn exactly as before
