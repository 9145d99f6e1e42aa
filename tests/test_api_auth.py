"""Keys and tenants: 401 without a known key, 403 for viewer writes, 404 for another tenant's
objects on every route (never a 403 that would reveal they exist), hashed production keys."""

# ruff: noqa: F811  (pytest fixtures are imported from api_support and used as arguments)

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from services.api.app import create_app
from services.api.auth import KeyRing, hash_key, parse_keys, parse_keys_file

from api_support import (  # noqa: F401  (fixtures)
    SUCCESS_MAP,
    Tenants,
    api,
    api_app,
    expect_problem,
    settings_for,
    success_profile,
    wav_bytes,
)

RANGE = {"from": "2024-01-01T00:00:00Z", "to": "2024-01-02T00:00:00Z"}


def acme_objects(api: Tenants) -> dict[str, str]:
    a = api.acme
    ids = {
        "code_map_id": a.post("/v1/code-maps", json=SUCCESS_MAP).json()["id"],
        "profile_id": a.post("/v1/profiles", json=success_profile()).json()["id"],
        "e164": "+4930555555",
    }
    ids["pool_id"] = a.post(
        "/v1/pools", json={"name": "p", "numbers": ["+4930555556"], "profile_id": ids["profile_id"]}
    ).json()["id"]
    assert a.put(f"/v1/numbers/{ids['e164']}/profile", json={"profile_id": ids["profile_id"]})
    files = {"file": ("p.wav", wav_bytes(), "audio/wav")}
    ids["prompt_id"] = a.post("/v1/prompts", files=files).json()["id"]
    ids["version"] = str(a.get(f"/v1/profiles/{ids['profile_id']}").json()["version"])
    ids["name"] = "success"
    return ids


def operations(app_schema: dict[str, Any]) -> list[tuple[str, str]]:
    out = []
    for path, methods in app_schema["paths"].items():
        for method, op in methods.items():
            if op.get("security"):
                out.append((method.upper(), path))
    return out


def bodies(globex_profile: str) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        ("PUT", "/v1/code-maps/{code_map_id}"): {"json": SUCCESS_MAP},
        ("PUT", "/v1/profiles/{profile_id}"): {"json": success_profile()},
        ("POST", "/v1/profiles"): {"json": success_profile()},
        ("POST", "/v1/code-maps"): {"json": SUCCESS_MAP},
        ("PUT", "/v1/pools/{pool_id}"): {"json": {"name": "x", "numbers": []}},
        ("POST", "/v1/pools"): {"json": {"name": "x", "numbers": []}},
        ("PUT", "/v1/pools/{pool_id}/profile"): {"json": {"profile_id": None}},
        ("PUT", "/v1/numbers/{e164}/profile"): {"json": {"profile_id": globex_profile}},
        ("POST", "/v1/prompts"): {"json": {"text": "Hallo", "language": "de"}},
    }


def test_every_route_needs_a_key_and_viewers_cannot_write(api: Tenants) -> None:
    ids = acme_objects(api)
    ops = operations(api.client.app.openapi())  # type: ignore[attr-defined]
    assert len(ops) >= 25
    for method, path in ops:
        url = path.format(**ids)
        params = {"profile_id": ids["profile_id"], **RANGE} if "/reports/" in path else None
        kw: dict[str, Any] = {"params": params, **bodies("x").get((method, path), {})}
        for who in (api.anonymous, type(api.acme)(api.client, "wrong-key")):
            p = expect_problem(who.request(method, url, **kw), 401, "Authorization")
            assert who.request(method, url, **kw).headers["www-authenticate"] == "Bearer"
            assert p["type"].endswith("unauthorized")
        r = api.viewer.request(method, url, **kw)
        if method == "GET":
            assert r.status_code == 200, (path, r.text)
        else:
            expect_problem(r, 403)


def test_another_tenants_objects_are_not_found_on_every_route(api: Tenants) -> None:
    ids = acme_objects(api)
    globex_profile = api.globex.post("/v1/profiles", json=success_profile()).json()["id"]
    ops = operations(api.client.app.openapi())  # type: ignore[attr-defined]
    checked = 0
    for method, path in ops:
        if "{" not in path and "/reports/" not in path:
            continue  # lists and creation: no ids of acme involved (checked below)
        url = path.format(**ids)
        params = {"profile_id": ids["profile_id"], **RANGE} if "/reports/" in path else None
        kw: dict[str, Any] = {"params": params, **bodies(globex_profile).get((method, path), {})}
        r = api.globex.request(method, url, **kw)
        if path.startswith("/v1/templates/"):
            assert r.status_code == 200  # built-in, shared by every tenant
        elif (method, path) == ("PUT", "/v1/numbers/{e164}/profile"):
            p = expect_problem(r, 409)  # acme holds the number; the answer does not say who
            assert p["detail"] == f"number {ids['e164']} is in use"
        else:
            expect_problem(r, 404)
        checked += 1
    assert checked >= 18
    for listing in ("/v1/code-maps", "/v1/pools", "/v1/prompts", "/v1/numbers"):
        assert api.globex.get(listing).json()["items"] == [], listing
    assert [p["id"] for p in api.globex.get("/v1/profiles").json()["items"]] == [globex_profile]
    # Referencing acme's objects from globex's own objects fails as if they did not exist.
    by_ref = success_profile(input={"type": "code", "code_map_id": ids["code_map_id"]})
    expect_problem(
        api.globex.post("/v1/profiles", json=by_ref), 422, "criteria[0].input.code_map_id"
    )
    with_prompt = {**success_profile(), "prompts": {"welcome": {"prompt_id": ids["prompt_id"]}}}
    expect_problem(
        api.globex.post("/v1/profiles", json=with_prompt), 422, "prompts.welcome.prompt_id"
    )
    expect_problem(
        api.globex.post(
            "/v1/pools", json={"name": "x", "numbers": [], "profile_id": ids["profile_id"]}
        ),
        422,
        "profile_id",
    )
    # And acme's objects are untouched.
    assert api.acme.get(f"/v1/profiles/{ids['profile_id']}").status_code == 200
    assert api.acme.get(f"/v1/numbers/{ids['e164']}").json()["profile_id"] == ids["profile_id"]


def test_signed_audio_urls(api: Tenants) -> None:
    audio = wav_bytes(seconds=0.25)
    prompt = api.acme.post("/v1/prompts", files={"file": ("a.wav", audio, "audio/wav")}).json()
    url = prompt["audio_url"]
    assert url.startswith(f"/audio/acme/{prompt['id']}.wav?sig=")
    r = api.anonymous.get(url)  # FreeSWITCH has no key: the signature is the authorisation
    assert r.status_code == 200 and r.content == audio
    assert r.headers["content-type"] == "audio/wav" and "max-age" in r.headers["cache-control"]
    assert api.anonymous.request("HEAD", url).status_code == 200  # caches may probe first
    sig = url.split("sig=")[1]
    expect_problem(api.anonymous.get(url.replace(sig, "0" * len(sig))), 403, "sig")
    expect_problem(api.anonymous.get(url.replace("/acme/", "/globex/")), 403, "sig")
    expect_problem(api.anonymous.get(url.split("?")[0]), 422, "sig")


def test_keys_from_env_and_hashed_file(tmp_path: Path) -> None:
    keys = parse_keys("acme:k1, acme:k2:viewer ,globex:k3")
    assert {p.tenant_id for p in keys.values()} == {"acme", "globex"}
    for bad in ("acme", "acme:", "Acme:k", "acme:k:admin"):
        with pytest.raises(ValueError):
            parse_keys(bad)
    with pytest.raises(ValueError, match="sha256"):
        parse_keys_file("acme:clear-text-key")

    secret = tmp_path / "keys"
    secret.write_text(f"# rotated 2024-05-01\nacme:{hash_key('prod-key')}\n\n")
    ring = KeyRing(keys="dev:dev-key", keys_file=str(secret))
    found = ring.lookup("prod-key")
    assert found is not None and found.tenant_id == "acme" and found.can_write
    assert ring.lookup(hash_key("prod-key")) is None  # the hash itself is not a key
    assert ring.lookup("dev-key") is not None and ring.lookup("nope") is None

    # A rotated Secret is picked up without a restart.
    secret.write_text(f"acme:{hash_key('new-key')}:viewer\n")
    os.utime(secret, (time.time() + 10, time.time() + 10))
    ring._checked_at = 0.0  # skip the recheck pause
    new = ring.lookup("new-key")
    assert new is not None and not new.can_write
    assert ring.lookup("prod-key") is None


def test_app_with_hashed_keys_file(nats_url: str, clickhouse_url: str, tmp_path: Path) -> None:
    secret = tmp_path / "keys"
    secret.write_text(f"acme:{hash_key('file-key')}\n")
    app = create_app(settings_for(nats_url, clickhouse_url, api_keys="", api_keys_file=str(secret)))
    with TestClient(app) as client:
        ok = client.get("/v1/profiles", headers={"Authorization": "Bearer file-key"})
        assert ok.status_code == 200
        no = client.get("/v1/profiles", headers={"Authorization": "Bearer acme-key"})
        expect_problem(no, 401)
