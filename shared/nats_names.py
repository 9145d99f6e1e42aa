"""Every NATS name in one place: stream, subjects, KV buckets, object store, dead letters.

Subjects carry the tenant so that permissions and consumers can be scoped per tenant:
``ct.v1.answers.<tenant>`` and ``ct.v1.surveys.<tenant>``. KV keys are ``<tenant>.<id>``.
"""

from __future__ import annotations

EVENTS_STREAM = "CT_EVENTS"
ANSWERS_SUBJECT_PREFIX = "ct.v1.answers"
SURVEYS_SUBJECT_PREFIX = "ct.v1.surveys"
EVENTS_SUBJECTS = [f"{ANSWERS_SUBJECT_PREFIX}.*", f"{SURVEYS_SUBJECT_PREFIX}.*"]

DEADLETTER_STREAM = "CT_DEADLETTER"
DEADLETTER_SUBJECT = "ct.v1.deadletter"
DEADLETTER_REASON_HEADER = "CT-Reason"
DEADLETTER_SUBJECT_HEADER = "CT-Original-Subject"

# Duplicate window of the events stream: a publish retried within it is dropped by JetStream.
DUPLICATE_WINDOW_S = 30 * 60

KV_PROFILES = "ct_profiles"
KV_CODE_MAPS = "ct_code_maps"
KV_POOLS = "ct_pools"
KV_NUMBERS = "ct_numbers"  # number assignments: key <tenant>.<digits of the E.164 number>
KV_PROFILE_HISTORY = 64  # JetStream's maximum: every saved profile version stays readable
OBJECT_STORE_PROMPTS = "ct_prompts"
# Written and read by the API only:
KV_PROFILE_VERSIONS = "ct_profile_versions"  # key <tenant>.<profile_id>.<revision> -> StoredProfile
KV_NUMBER_CLAIMS = "ct_number_claims"  # key <digits of E.164> -> the one tenant holding it

KV_BUCKETS = (
    KV_PROFILES, KV_CODE_MAPS, KV_POOLS, KV_NUMBERS, KV_PROFILE_VERSIONS, KV_NUMBER_CLAIMS,
)  # fmt: skip


def answers_subject(tenant_id: str) -> str:
    return f"{ANSWERS_SUBJECT_PREFIX}.{tenant_id}"


def surveys_subject(tenant_id: str) -> str:
    return f"{SURVEYS_SUBJECT_PREFIX}.{tenant_id}"


def tenant_of_subject(subject: str) -> str:
    """The tenant token of an events subject (last token)."""
    return subject.rsplit(".", 1)[-1]


def kv_key(tenant_id: str, object_id: str) -> str:
    return f"{tenant_id}.{object_id}"


def number_key(tenant_id: str, e164: str) -> str:
    """KV keys cannot hold '+', so a number is stored by its digits."""
    return f"{tenant_id}.{e164.lstrip('+')}"


def split_kv_key(key: str) -> tuple[str, str]:
    tenant, _, rest = key.partition(".")
    return tenant, rest
