"""The stories' one way to wait (tests/waiting.py): the first truthy value, or the first that `done`
accepts, whatever its truth; exceptions named in `ignoring` mean not yet; a wait that runs out names what
it awaited and the last thing seen."""

from __future__ import annotations

import itertools

import pytest

from tests.waiting import until, until_async


def test_until_gives_the_first_truthy_value_and_a_timeout_names_what_and_the_last_seen() -> None:
    counts = itertools.count()
    assert until(lambda: next(counts) >= 3 and "three", "three", 5, every=0) == "three"
    with pytest.raises(AssertionError, match=r"^never: not within 0 s \(last seen: \[\]\)$"):
        until(list, "never", 0.05, every=0.01)


def test_done_accepts_a_value_whatever_its_truth() -> None:
    logs = iter([[{"status": "pending"}], [], [{"status": "delivered"}]])
    assert until(lambda: next(logs), "empty", 5, every=0, done=lambda log: log == []) == []
    with pytest.raises(AssertionError, match=r"last seen: \[1, 2\]"):
        until(lambda: [1, 2], "three items", 0.05, every=0.01, done=lambda items: len(items) == 3)


def test_an_exception_named_in_ignoring_means_not_yet_and_any_other_goes_through() -> None:
    answers = iter([ConnectionError("starting"), ConnectionError("starting"), "up"])

    def ask() -> str:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def refused() -> str:
        raise ConnectionError("refused")

    assert until(ask, "up", 5, every=0, ignoring=(ConnectionError,)) == "up"
    with pytest.raises(AssertionError, match=r"last seen: ConnectionError\('refused'\)"):
        until(refused, "up", 0.05, every=0.01, ignoring=(OSError,))  # a subclass of one named
    with pytest.raises(ValueError):
        until(lambda: int("x"), "a number", 5, ignoring=(ConnectionError,))


async def test_until_async_waits_the_same_way() -> None:
    counts = itertools.count()

    async def count() -> int:
        return next(counts)

    assert await until_async(count, "two", 5, every=0, done=lambda n: n == 2) == 2

    async def refused() -> None:
        raise ConnectionError("refused")

    with pytest.raises(AssertionError, match=r"^up: not within 0 s \(last seen: ConnectionError\('refused'\)\)$"):
        await until_async(refused, "up", 0.05, every=0.01, ignoring=(ConnectionError,))
