"""Faust's Kafka transport, with idempotent producers, and one fix: after a rebalance, every partition
is put back where its committed offset says, those never committed included.

Idempotence: Faust turns it on only with `processing_guarantee="exactly_once"`; here every producer has
it (`acks=all`), so a send retried after a lost answer is written once, in order.

Around a rebalance Faust drops records it has fetched but not handled (it clears its stream queues, and
a fetch that returns while the flow is stopped is thrown away), and relies on seeking each partition back
to its committed offset to read them again. aiokafka's `seek_to_committed` only seeks partitions whose
committed offset is above 0, so a partition nothing was committed on yet stayed past the dropped records
until the next rebalance: a worker that took over a dead worker's partitions drew a take or two and
then never saw the rest of the queue (cf. faust-streaming/faust#216). Those partitions are now reset the
way the consumer resets a partition without an offset (`consumer_auto_offset_reset`); at worst a record
is delivered again, which every consumer drops. This is the client's doing, not the broker's: it holds on
Apache Kafka as it did on the stand-in broker (aiokafka 0.14's `seek_to_committed` still skips them)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import faust
from faust.transport.drivers import aiokafka as driver
from faust.types import TP


class ConsumerThread(driver.AIOKafkaConsumerThread):
    async def seek_to_committed(self) -> Mapping[TP, int]:
        committed: Mapping[TP, int] = await self.call_thread(self._seek_to_committed)
        return committed

    async def _seek_to_committed(self) -> Mapping[TP, int]:
        consumer = self._ensure_consumer()
        committed: Mapping[TP, int] = await consumer.seek_to_committed()
        # changelog partitions are positioned by table recovery, not by commits
        never = [tp for tp, offset in committed.items() if not offset and not self.consumer._is_changelog_tp(tp)]
        if never:
            if self.app.conf.consumer_auto_offset_reset == "latest":
                await consumer.seek_to_end(*never)
            else:
                await consumer.seek_to_beginning(*never)
        return committed


class Consumer(driver.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Producer(driver.Producer):
    def _settings_extra(self) -> Mapping[str, Any]:
        return {"acks": "all", "enable_idempotence": True}


class Transport(driver.Transport):
    Consumer = Consumer
    Producer = Producer


class App(faust.App):
    """A Faust app whose consumer uses `Transport`."""

    def _new_transport(self) -> Any:
        return Transport(self.conf.broker_consumer, self)


def never_commit(events: Iterable[faust.EventT[Any]]) -> None:
    """Leave a take's offsets uncommitted, and every one after them, so that another worker reads the
    take again. Faust acks a take when the agent leaves it; marked as acked now, its offsets are never
    handed to the committer (Faust has no public call for this: its message's `acked` flag is it)."""
    for event in events:
        event.message.acked = True
