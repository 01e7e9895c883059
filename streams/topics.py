"""Topic names, and their creation with a configurable partition count. The command, event and
family topics share one partition count so they are co-partitioned by variation id."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from streams.domain_events import DomainEvent
from streams.families import FamilyTable
from streams.messages import GenerateFamily, Message, VariationCancelled

log = logging.getLogger(__name__)

COMMANDS = "imagegen.commands"
EVENTS = "imagegen.events"
PROGRESS = "imagegen.progress"
DOMAIN_EVENTS = "imagegen.domain-events"
DEAD_LETTER = "imagegen.dead-letter"
WORKERS = "imagegen.workers"  # heartbeats: ephemeral, like progress; not part of the log
CONTROL = "imagegen.control"  # queue pause / resume, read whole by every worker; one partition, compacted


def family(name: str, priority: bool = False) -> str:
    return f"imagegen.family.{name}" + (".priority" if priority else "")


def route(message: Message | DomainEvent) -> tuple[str, ...]:
    """The topics a message the aggregate decides on goes to, in order."""
    match message:
        case GenerateFamily() as job:
            return (family(job.family, priority=job.priority == "dx"),)
        case DomainEvent():
            return (DOMAIN_EVENTS,)
        case VariationCancelled():
            # every worker reads the control topic whole: those holding the round's jobs let go
            return (CONTROL, EVENTS)
        case _:
            return (EVENTS,)


def all_topics(table: FamilyTable) -> list[str]:
    return [
        COMMANDS,
        EVENTS,
        PROGRESS,
        DOMAIN_EVENTS,
        DEAD_LETTER,
        WORKERS,
        CONTROL,
        *(family(f.name, p) for f in table for p in (False, True)),
    ]


async def create_all(
    bootstrap_servers: str, table: FamilyTable, partitions: int, replication: int = 1, attempts: int = 30
) -> list[str]:
    """Create every topic that does not exist yet; returns the names created."""
    for attempt in range(attempts):
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [t for t in all_topics(table) if t not in existing]
            if missing:
                # With three replicas or more, a write counts once two have it: one broker may be lost.
                durable = {"min.insync.replicas": "2"} if replication >= 3 else {}
                with contextlib.suppress(TopicAlreadyExistsError):  # another process was first
                    await admin.create_topics(
                        [
                            NewTopic(
                                t, num_partitions=partitions, replication_factor=replication, topic_configs=durable
                            )
                            if t != CONTROL
                            else NewTopic(t, 1, replication, topic_configs={"cleanup.policy": "compact", **durable})
                            for t in missing
                        ]
                    )
                log.info("created topics %s with %d partitions", missing, partitions)
            return missing
        except KafkaConnectionError:
            if attempt == attempts - 1:
                raise
            await asyncio.sleep(1)
        finally:
            await admin.close()
    return []


async def dead_letter(producer: AIOKafkaProducer, record: ConsumerRecord, reason: str) -> None:
    """Set `record` aside on the dead-letter topic as it came, with where it was and why. Awaited
    before the consumer moves past it, so nothing is lost."""
    log.warning("dead-lettering %s[%s]@%s: %s", record.topic, record.partition, record.offset, reason)
    await producer.send_and_wait(
        DEAD_LETTER,
        value=record.value,
        key=record.key,
        headers=[
            ("reason", reason.encode()),
            ("topic", record.topic.encode()),
            ("partition", str(record.partition).encode()),
            ("offset", str(record.offset).encode()),
        ],
    )
