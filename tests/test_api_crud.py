"""CRUD round trips on real NATS KV: code maps, templates, profiles (with versions), pools,
number assignments; ETag / If-Match conflicts; what the IVR reads from KV."""

# ruff: noqa: F811  (pytest fixtures are imported from api_support and used as arguments)

from __future__ import annotations

import asyncio
from typing import Any

import nats

from shared import nats_names as names
from shared.domain import StoredAssignment, StoredCodeMap, StoredPool, StoredProfile

from api_support import (  # noqa: F401  (fixtures)
    SUCCESS_MAP,
    Tenants,
    api,
    api_app,
    expect_problem,
    success_profile,
)


def created(r: Any) -> dict[str, Any]:
    assert r.status_code == 201, r.text
    body: dict[str, Any] = r.json()
    assert r.headers["etag"] == f'"{body["version"]}"'
    assert r.headers["location"].endswith("/" + body["id"])
    return body


def test_code_map_round_trip_with_etags(api: Tenants) -> None:
    cm = created(api.acme.post("/v1/code-maps", json=SUCCESS_MAP))
    url = f"/v1/code-maps/{cm['id']}"
    got = api.acme.get(url)
    assert got.status_code == 200 and got.headers["etag"] == f'"{cm["version"]}"'
    assert got.json()["entries"][0] == {
        "code": "1",
        "label": "ERFOLGREICH",
        "value": 1.0,
        "success": True,
    }
    assert [c["id"] for c in api.acme.get("/v1/code-maps").json()["items"]] == [cm["id"]]

    changed = {**SUCCESS_MAP, "name": "Erfolg 2"}
    r = api.acme.put(url, json=changed, headers={"If-Match": got.headers["etag"]})
    assert r.status_code == 200 and r.json()["name"] == "Erfolg 2"
    assert r.json()["version"] > cm["version"]
    assert r.json()["created_at"] == cm["created_at"]
    # The old ETag is stale now: both PUT and DELETE refuse it.
    expect_problem(
        api.acme.put(url, json=SUCCESS_MAP, headers={"If-Match": got.headers["etag"]}),
        412,
        "If-Match",
    )
    expect_problem(api.acme.delete(url, headers={"If-Match": got.headers["etag"]}), 412)
    expect_problem(api.acme.delete(url, headers={"If-Match": "garbage"}), 412)
    assert api.acme.delete(url, headers={"If-Match": r.headers["etag"]}).status_code == 204
    expect_problem(api.acme.get(url), 404, "code_map_id")
    expect_problem(api.acme.put(url, json=SUCCESS_MAP), 404)


def test_code_map_validation(api: Tenants) -> None:
    dup = {"name": "x", "entries": [{"code": "1", "label": "a"}, {"code": "1", "label": "b"}]}
    p = expect_problem(api.acme.post("/v1/code-maps", json=dup), 422, "entries")
    assert "repeated: 1" in p["detail"]
    bad = {"name": "x", "entries": [{"code": "1#", "label": "a"}]}
    expect_problem(api.acme.post("/v1/code-maps", json=bad), 422, "entries[0].code")
    expect_problem(api.acme.post("/v1/code-maps", json={"name": "x", "entries": []}), 422)
    expect_problem(
        api.acme.post("/v1/code-maps", content=b"{", headers={"content-type": "application/json"}),
        422,
    )


def test_code_map_in_use_cannot_be_deleted_or_lose_values(api: Tenants) -> None:
    cm = created(api.acme.post("/v1/code-maps", json=SUCCESS_MAP))
    body = success_profile(
        input={"type": "code", "code_map_id": cm["id"]}, aggregations=["count", "sum", "avg"]
    )
    profile = created(api.acme.post("/v1/profiles", json=body))
    p = expect_problem(api.acme.delete(f"/v1/code-maps/{cm['id']}"), 409)
    assert profile["id"] in p["detail"]
    no_values = {"name": "x", "entries": [{"code": "1", "label": "a"}]}
    expect_problem(api.acme.put(f"/v1/code-maps/{cm['id']}", json=no_values), 409, "entries")
    assert api.acme.delete(f"/v1/profiles/{profile['id']}").status_code == 204
    assert api.acme.delete(f"/v1/code-maps/{cm['id']}").status_code == 204


def test_templates_and_profiles_from_them(api: Tenants) -> None:
    items = api.acme.get("/v1/templates").json()["items"]
    assert {t["name"] for t in items} >= {"success", "school_grade", "order_value"}
    grade = api.acme.get("/v1/templates/school_grade").json()["profile"]["criteria"][0]
    labels = [e["label"] for e in grade["input"]["code_map"]["entries"]]
    assert labels == ["sehr gut", "gut", "befriedigend", "ausreichend", "mangelhaft", "ungenügend"]
    expect_problem(api.acme.get("/v1/templates/nope"), 422, "name")

    success = created(api.acme.post("/v1/profiles", json={"template": "success", "name": "S"}))
    assert success["name"] == "S"
    entries = success["criteria"][0]["input"]["code_map"]["entries"]
    assert [(e["code"], e["label"], e["success"]) for e in entries] == [
        ("1", "ERFOLGREICH", True),
        ("2", "NICHT ERFOLGREICH", False),
    ]
    order = created(api.acme.post("/v1/profiles", json={"template": "order_value"}))
    c = order["criteria"][0]
    assert c["input"] == {"type": "number", "min_digits": 1, "max_digits": 9, "terminator": "#"}
    assert {"sum", "max"} <= set(c["aggregations"])
    # Text prompts were rendered at save time: the prompt id names stored 8 kHz audio.
    prompt_id = c["prompt"]["prompt_id"]
    assert prompt_id and c["prompt"]["text"]
    meta = api.acme.get(f"/v1/prompts/{prompt_id}").json()
    assert (meta["source"], meta["sample_rate"], meta["encoding"]) == ("text", 8000, "pcm16")
    expect_problem(api.acme.post("/v1/profiles", json={"template": "nope"}), 422, "template")


def test_profile_versions_stay_readable(api: Tenants) -> None:
    p = created(api.acme.post("/v1/profiles", json=success_profile("v1")))
    url = f"/v1/profiles/{p['id']}"
    etag = f'"{p["version"]}"'
    revisions = [p["version"]]
    for n in range(2, 4):
        r = api.acme.put(url, json=success_profile(f"v{n}"), headers={"If-Match": etag})
        assert r.status_code == 200, r.text
        etag = r.headers["etag"]
        revisions.append(r.json()["version"])
    expect_problem(
        api.acme.put(url, json=success_profile("late"), headers={"If-Match": f'"{revisions[0]}"'}),
        412,
    )
    versions = api.acme.get(f"{url}/versions").json()["items"]
    assert [(v["version"], v["name"]) for v in versions] == list(
        zip(revisions, ["v1", "v2", "v3"], strict=True)
    )
    for rev, name in zip(revisions, ["v1", "v2", "v3"], strict=True):
        r = api.acme.get(f"{url}/versions/{rev}")
        assert r.status_code == 200 and r.json()["name"] == name and r.json()["version"] == rev
    expect_problem(api.acme.get(f"{url}/versions/999999"), 404, "version")
    assert api.acme.get(url).json()["name"] == "v3"
    assert api.acme.delete(url, headers={"If-Match": etag}).status_code == 204
    expect_problem(api.acme.get(f"{url}/versions"), 404)


def test_more_versions_than_the_kv_history_keeps(api: Tenants) -> None:
    p = created(api.acme.post("/v1/profiles", json=success_profile("v0")))
    url = f"/v1/profiles/{p['id']}"
    for n in range(1, names.KV_PROFILE_HISTORY + 6):
        assert api.acme.put(url, json=success_profile(f"v{n}")).status_code == 200
    versions = api.acme.get(f"{url}/versions").json()["items"]
    assert len(versions) == names.KV_PROFILE_HISTORY + 6
    first = api.acme.get(f"{url}/versions/{p['version']}")
    assert first.status_code == 200 and first.json()["name"] == "v0"


def test_profile_feasibility_is_checked(api: Tenants) -> None:
    def refused(field: str, **criterion: Any) -> dict[str, Any]:
        return expect_problem(
            api.acme.post("/v1/profiles", json=success_profile(**criterion)), 422, field
        )

    refused("criteria[0].tries", tries=0)
    refused("criteria[0].tries", tries=10)
    refused("criteria[0].timeout_ms", timeout_ms=999)
    refused("criteria[0].timeout_ms", timeout_ms=60_001)
    refused("criteria[0].input.code_map_id", input={"type": "code", "code_map_id": "missing"})
    refused(
        "criteria[0].aggregations",
        input={"type": "number", "min_digits": 1, "max_digits": 6},
        aggregations=["distribution"],
    )
    refused(
        "criteria[0].input.max_digits", input={"type": "number", "min_digits": 5, "max_digits": 2}
    )
    refused("criteria[0].input.max_digits", input={"type": "number", "max_digits": 19})
    valueless = {"name": "n", "entries": [{"code": "1", "label": "a"}]}
    cm = created(api.acme.post("/v1/code-maps", json=valueless))
    refused(
        "criteria[0].aggregations",
        input={"type": "code", "code_map_id": cm["id"]},
        aggregations=["sum"],
    )
    twice = success_profile()
    twice["criteria"] = twice["criteria"] * 2
    p = expect_problem(api.acme.post("/v1/profiles", json=twice), 422, "criteria")
    assert "repeated: success" in p["detail"]
    missing_prompt = {**success_profile(), "prompts": {"welcome": {"prompt_id": "nope"}}}
    expect_problem(
        api.acme.post("/v1/profiles", json=missing_prompt), 422, "prompts.welcome.prompt_id"
    )
    bad_voice = success_profile(prompt={"text": "Hallo", "language": "zz"})
    expect_problem(
        api.acme.post("/v1/profiles", json=bad_voice), 422, "criteria[0].prompt.language"
    )
    assert api.acme.get("/v1/profiles").json()["items"] == []


def test_pools_and_number_ownership(api: Tenants) -> None:
    a, b, c = "+4930111111", "+4930222222", "+4930333333"
    pool = created(api.acme.post("/v1/pools", json={"name": "Berlin", "numbers": [a, b]}))
    url = f"/v1/pools/{pool['id']}"
    assert api.acme.get(url).json()["numbers"] == [a, b]
    # Within a tenant a number is in one pool; across tenants it belongs to one tenant.
    p = expect_problem(api.acme.post("/v1/pools", json={"name": "x", "numbers": [c, a]}), 409)
    assert pool["id"] in p["detail"]
    other = expect_problem(api.globex.post("/v1/pools", json={"name": "x", "numbers": [b]}), 409)
    assert other["detail"] == f"number {b} is in use" and "acme" not in str(other)
    expect_problem(api.globex.put(f"/v1/numbers/{a}/profile", json={"profile_id": "x"}), 422)
    # The refused pool claimed nothing: c is still free for globex.
    g = created(api.globex.post("/v1/pools", json={"name": "g", "numbers": [c]}))

    r = api.acme.put(
        url, json={"name": "Berlin", "numbers": [b]}, headers={"If-Match": pool_etag(pool)}
    )
    assert r.status_code == 200 and r.json()["numbers"] == [b]
    expect_problem(
        api.acme.put(
            url, json={"name": "B", "numbers": [a]}, headers={"If-Match": pool_etag(pool)}
        ),
        412,
    )
    # a was released by acme and can now go to globex.
    assert (
        api.globex.put(f"/v1/pools/{g['id']}", json={"name": "g", "numbers": [c, a]}).status_code
        == 200
    )
    assert api.acme.delete(url).status_code == 204
    assert created(api.globex.post("/v1/pools", json={"name": "g2", "numbers": [b]}))
    expect_problem(api.acme.get(url), 404)
    dup = expect_problem(api.acme.post("/v1/pools", json={"name": "d", "numbers": [a, a]}), 422)
    assert "only once" in dup["detail"]
    expect_problem(
        api.acme.post("/v1/pools", json={"name": "d", "numbers": ["030123"]}), 422, "numbers[0]"
    )


def pool_etag(pool: dict[str, Any]) -> str:
    return f'"{pool["version"]}"'


def test_number_assignment_resolution(api: Tenants) -> None:
    p1 = created(api.acme.post("/v1/profiles", json=success_profile("pool profile")))
    p2 = created(api.acme.post("/v1/profiles", json=success_profile("own profile")))
    n, lone = "+4940123456", "+4940999999"
    pool = created(
        api.acme.post("/v1/pools", json={"name": "HH", "numbers": [n], "profile_id": p1["id"]})
    )
    assert api.acme.get(f"/v1/numbers/{n}").json() == {
        "number": n,
        "profile_id": p1["id"],
        "source": "pool",
        "assigned_profile_id": None,
        "assignment_version": None,
        "pool_id": pool["id"],
        "pool_profile_id": p1["id"],
    }
    r = api.acme.put(f"/v1/numbers/{n}/profile", json={"profile_id": p2["id"]})
    assert r.status_code == 200 and r.json()["profile_id"] == p2["id"]
    own = api.acme.get(f"/v1/numbers/{n}").json()
    assert (own["profile_id"], own["source"]) == (p2["id"], "number")
    assert own["assignment_version"] == r.json()["version"]
    expect_problem(
        api.acme.put(
            f"/v1/numbers/{n}/profile", json={"profile_id": p1["id"]}, headers={"If-Match": '"999"'}
        ),
        412,
    )
    # A profile in use cannot be deleted.
    expect_problem(api.acme.delete(f"/v1/profiles/{p2['id']}"), 409, "profile_id")
    assert api.acme.delete(f"/v1/numbers/{n}/profile").status_code == 204
    assert api.acme.get(f"/v1/numbers/{n}").json()["source"] == "pool"
    expect_problem(api.acme.delete(f"/v1/numbers/{n}/profile"), 404)

    # Pool assignment through its own route, then unassigned again.
    r = api.acme.put(f"/v1/pools/{pool['id']}/profile", json={"profile_id": p2["id"]})
    assert r.status_code == 200 and r.json()["profile_id"] == p2["id"]
    assert api.acme.get(f"/v1/numbers/{n}").json()["profile_id"] == p2["id"]
    assert (
        api.acme.put(f"/v1/pools/{pool['id']}/profile", json={"profile_id": None}).status_code
        == 200
    )
    assert api.acme.get(f"/v1/numbers/{n}").json()["source"] is None
    expect_problem(
        api.acme.put(f"/v1/pools/{pool['id']}/profile", json={"profile_id": "zz"}),
        422,
        "profile_id",
    )

    # A number on its own (no pool) and the list of all numbers.
    assert (
        api.acme.put(f"/v1/numbers/{lone}/profile", json={"profile_id": p1["id"]}).status_code
        == 200
    )
    listed = {x["number"]: x["source"] for x in api.acme.get("/v1/numbers").json()["items"]}
    assert listed == {n: None, lone: "number"}
    expect_problem(api.globex.put(f"/v1/numbers/{lone}/profile", json={"profile_id": "zz"}), 422)
    expect_problem(api.acme.get("/v1/numbers/+4940000000"), 404, "e164")
    expect_problem(api.acme.get("/v1/numbers/0401234"), 422, "e164")


def test_kv_values_are_the_shared_stored_models(api: Tenants, nats_url: str) -> None:
    """The IVR parses these entries with shared/domain.py's Stored* models (extra=forbid)."""
    cm = created(api.acme.post("/v1/code-maps", json=SUCCESS_MAP))
    prof = created(api.acme.post("/v1/profiles", json={"template": "school_grade"}))
    pool = created(api.acme.post("/v1/pools", json={"name": "p", "numbers": ["+4989123456"]}))
    assert api.acme.put("/v1/numbers/+4989123456/profile", json={"profile_id": prof["id"]})

    async def read() -> None:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        for bucket, key, model in (
            (names.KV_CODE_MAPS, f"acme.{cm['id']}", StoredCodeMap),
            (names.KV_PROFILES, f"acme.{prof['id']}", StoredProfile),
            (names.KV_POOLS, f"acme.{pool['id']}", StoredPool),
            (names.KV_NUMBERS, "acme.4989123456", StoredAssignment),
        ):
            entry = await (await js.key_value(bucket)).get(key)
            value = model.model_validate_json(entry.value or b"")
            assert value.tenant_id == "acme"
        profile = StoredProfile.model_validate_json(
            (await (await js.key_value(names.KV_PROFILES)).get(f"acme.{prof['id']}")).value or b""
        )
        assert profile.criteria[0].prompt is not None
        assert getattr(profile.criteria[0].prompt, "prompt_id", None)
        await nc.close()

    asyncio.run(read())
