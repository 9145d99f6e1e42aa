"""Prometheus metrics of one aggregator, in a registry of its own (several may run in a test)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class AggregatorMetrics:
    def __init__(self, registry: CollectorRegistry | None = None):
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages = Counter(
            "ct_aggregator_messages",
            "Messages fetched from JetStream, by kind (answer, survey, invalid)",
            ["kind"],
            registry=r,
        )
        self.batches = Counter("ct_aggregator_batches", "Batches processed and acked", registry=r)
        self.batch_size = Histogram(
            "ct_aggregator_batch_messages",
            "Messages per fetched batch",
            buckets=(1, 10, 50, 100, 500, 1000, 2000, 5000, 10000, 50000),
            registry=r,
        )
        self.rows = Counter(
            "ct_aggregator_rows_inserted", "Rows inserted into ClickHouse", ["table"], registry=r
        )
        self.insert_seconds = Histogram(
            "ct_aggregator_insert_seconds",
            "Time to write one batch to ClickHouse (lookups of stored ids + INSERTs)",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.insert_errors = Counter(
            "ct_aggregator_insert_errors", "Failed batch writes (each is retried)", registry=r
        )
        self.dead_letters = Counter(
            "ct_aggregator_dead_letters",
            "Messages sent to the dead-letter subject, by reason category",
            ["reason"],
            registry=r,
        )
        self.duplicates = Counter(
            "ct_aggregator_duplicates_skipped",
            "Events not inserted because they were already stored or repeated within a batch",
            ["where"],
            registry=r,
        )
        self.pending = Gauge(
            "ct_aggregator_consumer_pending",
            "Consumer lag: messages in the stream not yet delivered to the durable consumer",
            registry=r,
        )
        self.ack_pending = Gauge(
            "ct_aggregator_consumer_ack_pending",
            "Messages delivered to the durable consumer and not yet acknowledged",
            registry=r,
        )
        self.clickhouse_up = Gauge(
            "ct_aggregator_clickhouse_up", "1 when the last ClickHouse call succeeded", registry=r
        )
        self.nats_connected = Gauge(
            "ct_aggregator_nats_connected", "1 while connected to NATS", registry=r
        )
