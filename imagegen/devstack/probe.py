"""What the launcher says to Kafka without a client: a raw Metadata request, which proves a node serves
the protocol and has joined its cluster, and a new cluster's id, drawn as Kafka draws one."""

from __future__ import annotations

import base64
import socket
import struct
import uuid


def metadata(port: int, timeout: float = 1.0) -> list[tuple[int, str, int]]:
    """A raw Metadata v1 request for no topic: the brokers the node advertises, as (id, host, port).
    It proves the node serves the protocol and has joined the cluster (an open port does not), and
    being plain sockets it also works inside a running event loop."""
    client = b"imagegen-launcher"
    request = struct.pack(">hhih", 3, 1, 1, len(client)) + client + struct.pack(">i", 0)  # 0 topics
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(struct.pack(">i", len(request)) + request)
        f = s.makefile("rb")  # read(n) returns short only at EOF, which then fails to unpack
        (size,) = struct.unpack(">i", f.read(4))
        body = f.read(size)
    (count,), at, brokers = struct.unpack(">i", body[4:8]), 8, []
    for _ in range(count):
        node, host_len = struct.unpack(">ih", body[at : at + 6])
        host = body[at + 6 : at + 6 + host_len].decode()
        at += 6 + host_len
        (broker_port, rack_len) = struct.unpack(">ih", body[at : at + 6])
        at += 6 + max(rack_len, 0)
        brokers.append((node, host, broker_port))
    return brokers


def cluster_id() -> str:
    """A random cluster id as Kafka's own `Uuid.randomUuid()` makes one: URL-safe base64 of 16 bytes,
    never starting with '-', which the storage tool's command line would take for an option."""
    while (made := base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()).startswith("-"):
        pass
    return made
