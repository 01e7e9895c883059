"""Logging for every process: text lines for people or one JSON object per line (LOG_FORMAT=json,
python-json-logger) for a log pipeline. A record logged while a job is handled carries the job's
variation id, variation name, family and job id, set once per job (`about`) in a context variable,
so no log call has to pass them."""

from __future__ import annotations

import contextlib
import contextvars
import logging
import logging.config
from collections.abc import Iterator
from typing import Any

from streams import messages as m

JOB: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("job", default=None)
FIELDS = ("variation_id", "variation", "family", "job_id")
TEXT = "%(asctime)s %(levelname)s %(name)s %(message)s%(job)s"
JSON = "%(levelname)s %(name)s %(message)s"


@contextlib.contextmanager
def about(*jobs: m.GenerateFamily) -> Iterator[None]:
    """Records logged inside (on this task, and in what it hands to threads via copy_context) carry
    the jobs' identity: strings for one job, lists for a batch drawn together."""

    def field(values: list[str]) -> Any:
        return values[0] if len(values) == 1 else values

    token = JOB.set(
        {
            "variation_id": field([str(j.variation_id) for j in jobs]),
            "variation": field([j.name for j in jobs]),
            "family": jobs[0].family,
            "job_id": field([str(j.job_id) for j in jobs]),
        }
    )
    try:
        yield
    finally:
        JOB.reset(token)


class JobFields(logging.Filter):
    """Puts the current job's fields on each record logged about one."""

    def filter(self, record: logging.LogRecord) -> bool:
        if job := JOB.get():
            for name in FIELDS:
                record.__dict__.setdefault(name, job[name])
        return True


class JobText(logging.Filter):
    """For text lines: ` [variation/family]` after the message of a record about a job."""

    def filter(self, record: logging.LogRecord) -> bool:
        job = JOB.get()
        if job:
            names = job["variation"] if isinstance(job["variation"], str) else ",".join(job["variation"])
            record.job = f" [{names}/{job['family']}]"
        else:
            record.job = ""
        return True


def _json(service: str) -> logging.Formatter:
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter(
        JSON,
        rename_fields={"levelname": "level", "name": "logger"},
        timestamp="time",
        static_fields={"service": service} if service else {},
    )


def config(form: str = "text", level: str = "INFO", service: str = "") -> dict[str, Any]:
    """A dictConfig for the root logger (Faust's worker and uvicorn take it as it is)."""
    formatter: dict[str, Any] = {"()": _json, "service": service} if form == "json" else {"format": TEXT}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"job": {"()": JobFields}, "text": {"()": JobText}},
        "formatters": {"default": formatter},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["job"] if form == "json" else ["job", "text"],
                "stream": "ext://sys.stderr",
            },
        },
        "root": {"level": level.upper(), "handlers": ["default"]},
        "loggers": {
            "httpx": {"level": "WARNING"},
            "pyvips": {"level": "WARNING"},  # a line per libvips threadpool at INFO
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": True},
        },
    }


def setup(form: str = "text", level: str = "INFO", service: str = "") -> dict[str, Any]:
    made = config(form, level, service)
    logging.config.dictConfig(made)
    return made
