"""The configuration index follows NATS KV (real nats-server): edits within 1 s, the last
configuration kept while NATS is away, catch-up after a restart."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from services.ivr.config_index import ConfigIndex, ConfigWatcher
from services.ivr.loop_thread import LoopThread
from services.ivr.metrics import IvrMetrics
from services.ivr.nats_link import NatsLink
from shared import nats_names as names
from shared.stack import LocalStack

from ivr_kit import (
    assignment,
    code_map,
    kv_delete,
    kv_put,
    pool,
    profile,
    standard_config,
    wait_for,
)


@pytest.fixture
def index(nats_url: str) -> Iterator[ConfigIndex]:
    metrics = IvrMetrics()
    idx = ConfigIndex(metrics)
    loop = LoopThread("test-nats")
    watcher = ConfigWatcher(idx, retry_s=0.2)
    link = NatsLink([nats_url], metrics, watcher.restart)
    loop.start()
    loop.submit(link.start()).result(5)
    yield idx
    loop.submit(watcher.stop()).result(5)
    loop.submit(link.close()).result(5)
    loop.stop()


def test_resolves_assignment_pool_and_unknown(nats_url: str, index: ConfigIndex) -> None:
    revs = standard_config(nats_url)
    wait_for(lambda: index.resolve("+493011100").profile is not None, 5, what="profile")
    own = index.resolve("493011100")  # FreeSWITCH may hand the number without '+'
    assert (own.tenant_id, own.profile_id, own.pool_id) == ("acme", "p1", "")
    assert own.revision == revs["profile_revision"]
    assert "grades" in own.code_maps
    in_pool = index.resolve("+493022200")
    assert (in_pool.tenant_id, in_pool.profile_id, in_pool.pool_id) == ("acme", "p1", "pool-a")
    no_profile = index.resolve("+493099900")
    assert (no_profile.tenant_id, no_profile.profile) == ("acme", None)
    assert index.resolve("+4940123456").tenant_id is None


def test_number_assignment_wins_over_pool(nats_url: str, index: ConfigIndex) -> None:
    kv_put(
        nats_url,
        code_map(),
        profile(profile_id="p1"),
        profile(profile_id="p2"),
        pool("acme", "pool-a", ["+493022200"], "p1"),
    )
    wait_for(lambda: index.resolve("+493022200").profile_id == "p1", 5, what="pool profile")
    kv_put(nats_url, assignment("acme", "+493022200", "p2"))
    got = wait_for(
        lambda: (r := index.resolve("+493022200")).profile_id == "p2" and r,
        1.0,
        what="assignment within 1 s",
    )
    assert got.pool_id == "pool-a"  # still reported per pool
    kv_delete(nats_url, names.KV_NUMBERS, names.number_key("acme", "+493022200"))
    wait_for(lambda: index.resolve("+493022200").profile_id == "p1", 1.0, what="delete")


def test_edit_applies_within_one_second(nats_url: str, index: ConfigIndex) -> None:
    standard_config(nats_url)
    first = wait_for(lambda: index.resolve("+493011100").profile, 5, what="profile")
    assert len(first.criteria) == 3
    t0 = time.monotonic()
    (rev,) = kv_put(
        nats_url,
        profile(
            criteria=[
                {"key": "only", "label": "Nur", "input": {"type": "code", "code_map_id": "grades"}}
            ]
        ),
    )
    edited = wait_for(
        lambda: index.resolve("+493011100").revision == rev, 1.0, 0.01, "edit within 1 s"
    )
    assert edited
    assert time.monotonic() - t0 < 1.5
    assert [c.key for c in index.resolve("+493011100").profile.criteria] == ["only"]  # type: ignore[union-attr]


def test_keeps_configuration_while_nats_is_away(
    nats_stack: LocalStack, nats_url: str, index: ConfigIndex
) -> None:
    standard_config(nats_url)
    wait_for(lambda: index.resolve("+493011100").profile, 5, what="profile")
    nats_stack.stop_nats(kill=True)
    time.sleep(0.5)
    assert index.resolve("+493011100").profile is not None  # served from memory
    nats_stack.start_nats()
    # A pool re-assigned while we were reconnecting; the rebuilt watch picks it up.
    kv_put(nats_url, profile(profile_id="p9"), pool("acme", "pool-a", ["+493022200"], "p9"))
    wait_for(lambda: index.resolve("+493022200").profile_id == "p9", 10, what="catch-up")
    assert index.resolve("+493011100").profile_id == "p1"


def test_bad_value_is_ignored_and_counted() -> None:
    metrics = IvrMetrics()
    idx = ConfigIndex(metrics)
    from services.ivr.config_index import KvItem

    idx.apply(names.KV_PROFILES, KvItem("acme.p1", b"{not json", 3))
    idx.apply(names.KV_PROFILES, KvItem("other.p1", profile().model_dump_json().encode(), 4))
    assert metrics.config_errors._value.get() == 2
    assert idx.resolve("+493011100").tenant_id is None
