"""Webhooks: the public domain events posted, signed, to HTTP receivers that registered through the API,
for services that cannot read Kafka."""
