"""Prometheus metrics of the IVR (served on CT_IVR_METRICS_LISTEN by shared.health_http).

Updated from two threads (gevent hub and the NATS loop thread); prometheus_client is
thread-safe. A registry of its own keeps several IVRs in one process (tests) apart.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class IvrMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.active_surveys = Gauge("ct_ivr_active_surveys", "surveys running now", registry=r)
        self.connections = Counter(
            "ct_ivr_connections_total", "event-socket connections accepted", registry=r
        )
        self.rejected = Counter(
            "ct_ivr_connections_rejected_total",
            "connections refused (at capacity or draining)",
            registry=r,
        )
        self.surveys = Counter(
            "ct_ivr_surveys_total", "finished surveys by outcome", ["outcome"], registry=r
        )
        self.answers = Counter(
            "ct_ivr_answers_total", "answers recorded by status", ["status"], registry=r
        )
        self.no_profile = Counter(
            "ct_ivr_no_profile_total",
            "calls on a number without profile, by whether its tenant is known",
            ["tenant_known"],
            registry=r,
        )
        self.published = Counter(
            "ct_ivr_events_published_total",
            "events acknowledged by JetStream, by kind (answer/survey)",
            ["kind"],
            registry=r,
        )
        self.duplicates = Counter(
            "ct_ivr_publish_duplicates_total",
            "publishes JetStream reported as duplicates (an earlier try had landed)",
            registry=r,
        )
        self.publish_retries = Counter(
            "ct_ivr_publish_retries_total",
            "publish attempts that failed and were retried",
            registry=r,
        )
        self.buffer_depth = Gauge(
            "ct_ivr_buffer_depth", "events waiting for a JetStream ack", registry=r
        )
        self.buffer_overflow = Counter(
            "ct_ivr_buffer_overflow_total",
            "events dropped because the buffer was full",
            registry=r,
        )
        self.esl_errors = Counter(
            "ct_ivr_esl_errors_total",
            "event-socket problems by kind (malformed frame, timeout, lost connection, ...)",
            ["kind"],
            registry=r,
        )
        self.config_updates = Counter(
            "ct_ivr_config_updates_total", "KV updates applied, by bucket", ["bucket"], registry=r
        )
        self.config_errors = Counter(
            "ct_ivr_config_errors_total",
            "KV values or profiles that could not be used",
            registry=r,
        )
        self.nats_connected = Gauge(
            "ct_ivr_nats_connected", "1 while connected to NATS", registry=r
        )
        self.reaction_seconds = Histogram(
            "ct_ivr_reaction_seconds",
            "an application's EXECUTE_COMPLETE read -> the next command written (our own time)",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5),
            registry=r,
        )
