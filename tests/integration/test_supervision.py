"""The launcher's supervision, on a process that cannot stay up: each exit is said with the end of its
log and followed by a restart after a growing delay, until too many restarts within the window make it
give up (and `imagegen dev` then stops the whole stack, exiting 1)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from imagegen.services import ServiceError, Services


def test_a_process_that_keeps_exiting_is_restarted_with_backoff_then_given_up(tmp_path: Path) -> None:
    services = Services({}, tmp_path / "logs")
    services.spawn("crasher", "no-such-command")  # argparse refuses it at once: exit code 2
    said: list[str] = []
    began = time.monotonic()
    with pytest.raises(ServiceError, match="the crasher stopped 3 times in 60 s: giving up"):
        services.supervise(threading.Event(), max_restarts=2, window_s=60, say=said.append)
    took = time.monotonic() - began

    exits = [line for line in said if "exited with 2" in line]
    assert len(exits) == 3 and services.restarts == {"crasher": 2}
    assert [line for line in said if "starting the crasher again" in line] == [
        "imagegen: starting the crasher again in 1 s",
        "imagegen: starting the crasher again in 2 s",
    ]
    assert any("invalid choice: 'no-such-command'" in line for line in said)  # the end of its log
    assert took >= 3.0  # the two delays were waited, not skipped
