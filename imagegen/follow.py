"""`imagegen generate … --follow`: submit a variation and watch it being drawn, one progress bar per
family fed by the API's server-sent events (GET /variations/{id}/live), then print its URLs."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
from httpx_sse import connect_sse
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from streams import messages as m

CONCLUSIONS = {"VariationCompleted", "VariationPartial", "VariationFailed", "VariationCancelled"}
DONE = ("completed", "partial", "failed", "cancelled")


class Bars:
    """One bar per family: queued, started on a worker, each denoising step, and how it ended."""

    def __init__(self, progress: Progress, families: list[str], previews: str = "") -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {f: progress.add_task(f, total=None, status="queued") for f in families}
        self.previews, self.previewed = previews, set[str]()  # the families whose preview was pointed at

    def show(self, kind: str, data: dict[str, Any]) -> None:
        task = self.tasks.get(data.get("family", ""))
        if task is None:
            return
        match kind:
            case "FamilyStarted":
                self.progress.update(task, status=f"drawing on {data['worker']}")
            case "FamilyProgress":
                self.progress.update(task, completed=data["step"], total=data["steps"])
            case "FamilyPreview" if data["family"] not in self.previewed:  # where to watch it form, once
                self.previewed.add(data["family"])
                self.progress.console.print(f"{data['family']}: forming at {self.previews}/{data['family']}/preview")
            case "FamilyCompleted":
                total = self.progress.tasks[task].total or 1
                self.progress.update(task, completed=total, total=total, status=f"done in {data['duration_s']:.1f} s")
            case "FamilyFailed":
                self.progress.update(task, status=f"[red]failed: {data['message']}")
            case "FamilyCancelled":
                self.progress.update(task, status=f"[yellow]cancelled at step {data['at_step']}")
            case "FamilyRetryRequested":
                self.progress.update(task, completed=0, status=f"retry, attempt {data['attempt']}")


def follow(api_url: str, body: dict[str, Any], timeout: float = 3600.0) -> dict[str, Any]:
    """POST `body` and show its drawing until the variation concludes; returns the variation."""
    vid = m.variation_id(str(body["name"]))
    console = Console(stderr=True)
    with (
        httpx.Client(base_url=api_url, timeout=30) as client,
        # listen before posting, so that no step is missed
        connect_sse(client, "GET", f"/api/images/variations/{vid}/live", timeout=httpx.Timeout(30, read=60)) as live,
    ):
        if live.response.status_code != 200:
            raise SystemExit(f"cannot follow ({live.response.status_code}): {live.response.read().decode()}")
        response = client.post("/api/images/variations", json=body)
        if response.status_code != 202:
            raise SystemExit(f"refused ({response.status_code}): {response.text}")
        accepted = response.json()
        console.print(f"accepted: {accepted['name']} ({accepted['id']})")
        columns = (
            TextColumn("{task.description:<12}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
        )
        if accepted["status"] != "accepted":  # "accepted": the same request was made before, and is done
            with Progress(*columns, console=console) as progress:
                bars = Bars(progress, list(body["families"]), f"{api_url}/api/images/variations/{vid}/families")
                for event in live.iter_sse():  # a ping at least every 15 s keeps the read timeout away
                    if event.event == "snapshot":
                        continue
                    data = json.loads(event.data)
                    if event.event == "VariationRejected":
                        raise SystemExit(f"rejected: {data['reason']}")
                    bars.show(event.event, data)
                    if event.event in CONCLUSIONS:
                        break
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # the read model may be a moment behind the log
            found = client.get(f"/api/images/variations/{vid}")
            if found.status_code == 200 and found.json()["status"] in DONE:
                return found.json()  # type: ignore[no-any-return]
            time.sleep(0.2)
    raise SystemExit(f"variation {vid} did not finish in {timeout} s")
