"""The brand policy: terms no prompt may contain, and a negative prompt added to every job.

The aggregate applies it, so the event log records what was decided: a create whose prompt has a
blocked term becomes `VariationRejected` with the terms named, and every job it sends carries the
policy's negative prompt (`GenerateFamily.brand_negative_prompt`), which the worker adds to the
variation's own for every model. The API checks the same terms first, to answer 422 at once."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from streams import messages as m


def _folded(text: str) -> str:
    """Compatibility-normalised and case-folded, so full-width `GORE` and `Gore` read as `gore`."""
    return unicodedata.normalize("NFKC", text).casefold()


@dataclass(frozen=True)
class BrandPolicy:
    blocked_terms: tuple[str, ...] = ()
    negative_prompt: str = ""

    @classmethod
    def configured(cls, blocked_terms: str, negative_prompt: str) -> BrandPolicy:
        """From the settings: terms comma separated (a term may be a phrase)."""
        terms = tuple(dict.fromkeys(t for t in (" ".join(_folded(t).split()) for t in blocked_terms.split(",")) if t))
        return cls(blocked_terms=terms, negative_prompt=negative_prompt.strip())

    def blocked_in(self, prompt: str) -> list[str]:
        """The blocked terms the prompt contains as whole words (`ass` does not block `class`),
        whatever their case, width or spacing."""
        text = " ".join(_folded(prompt).split())
        return [t for t in self.blocked_terms if re.search(rf"(?<!\w){re.escape(t)}(?!\w)", text)]

    def applied(self, job: m.GenerateFamily) -> m.GenerateFamily:
        if not self.negative_prompt or job.brand_negative_prompt == self.negative_prompt:
            return job
        return job.model_copy(update={"brand_negative_prompt": self.negative_prompt})


def negative_prompt(job: m.GenerateFamily) -> str:
    """What the job is drawn with as its negative prompt: the variation's, then the brand policy's."""
    own = job.generation.negative_prompt
    if not job.brand_negative_prompt:
        return own
    return f"{own.strip()}, {job.brand_negative_prompt}" if own.strip() else job.brand_negative_prompt
