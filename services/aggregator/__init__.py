"""The aggregator: a durable JetStream pull consumer that writes answer and survey events to
ClickHouse in batches and acknowledges them only after ClickHouse accepted the insert.

Modules: ``decode`` (message -> event or dead-letter reason), ``dedup`` (ids already stored),
``writer`` (one INSERT per table per batch), ``consumer`` (JetStream side), ``service`` (the
loop, retries, shutdown), ``metrics`` and ``cli`` (``convtrack aggregator``).
"""
