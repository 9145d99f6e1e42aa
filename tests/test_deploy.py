"""Kubernetes manifests (deploy/k8s): rendered, validated against the Kubernetes schemas, and
checked against the code they deploy. Offline and fast: no cluster, no network.

Rendering: a small kustomize for exactly the subset deploy/k8s uses (``resources``,
``namespace``, metadata-only ``labels``, ``images``, ``replicas``, JSON 6902 ``patches`` with a
``target``), because ``kubectl`` is not part of the project's setup. It refuses any other field,
so a new kustomize feature in the manifests fails loudly here until the renderer learns it.
Where a ``kubectl`` with kustomize v4+ is installed, a test checks that both renderings agree.

Validation: kubernetes-validate (strict: unknown fields are errors) against the oldest and the
newest Kubernetes release we claim to support.
"""

from __future__ import annotations

import argparse
import copy
import ipaddress
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import kubernetes_validate
import pytest
import yaml

from convtrack import migrate_cli
from services.api.auth import parse_keys_file
from services.ivr.server import FLUSH_MIN_S
from shared.clickhouse.migrations import Target
from shared.settings import Settings, split_host_port

ROOT = Path(__file__).resolve().parents[1]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = {"dev": "convtrack-dev", "prod": "convtrack"}
KUBE_VERSIONS = ("1.28.0", kubernetes_validate.latest_version())

APP_IMAGE = "convtrack"  # the image name in base/, mapped by each overlay's `images`
SERVICES = ("api", "ivr", "aggregator")
SECRET_NAME = "convtrack-secrets"  # created out of band in prod; example in example-secrets/
CT_NAMES = {f"CT_{name.upper()}" for name in Settings.model_fields}

Doc = dict[str, Any]


# --------------------------------------------------------------------------------------------
# A minimal kustomize
# --------------------------------------------------------------------------------------------


class KustomizeError(Exception):
    pass


_SUPPORTED_FIELDS = {
    "apiVersion",
    "kind",
    "resources",
    "namespace",
    "labels",
    "images",
    "replicas",
    "patches",
}
_CLUSTER_SCOPED = {
    "Namespace",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PersistentVolume",
    "StorageClass",
    "PriorityClass",
    "IngressClass",
}


def render(directory: Path) -> list[Doc]:
    """Render the kustomization in ``directory`` the way ``kubectl kustomize`` does."""
    kfile = directory / "kustomization.yaml"
    spec = yaml.safe_load(kfile.read_text())
    unknown = set(spec) - _SUPPORTED_FIELDS
    if unknown:
        raise KustomizeError(f"{kfile}: fields {sorted(unknown)} are not implemented here")
    docs: list[Doc] = []
    for entry in spec.get("resources", []):
        target = (directory / entry).resolve()
        if target.is_dir():
            docs.extend(render(target))
        else:
            docs.extend(d for d in yaml.safe_load_all(target.read_text()) if d)
    # kustomize's builtin order: patches, namespace, labels, replicas, images.
    for patch in spec.get("patches", []):
        _apply_patch(docs, patch, directory)
    if "namespace" in spec:
        for doc in docs:
            if doc["kind"] not in _CLUSTER_SCOPED:
                doc["metadata"]["namespace"] = spec["namespace"]
    for label_set in spec.get("labels", []):
        if label_set.get("includeSelectors") or label_set.get("includeTemplates"):
            raise KustomizeError(f"{kfile}: labels on selectors/templates are not implemented")
        for doc in docs:
            doc["metadata"].setdefault("labels", {}).update(label_set["pairs"])
    for replica in spec.get("replicas", []):
        hits = [
            d
            for d in docs
            if d["kind"] in ("Deployment", "StatefulSet", "ReplicaSet")
            and d["metadata"]["name"] == replica["name"]
        ]
        if not hits:
            raise KustomizeError(f"{kfile}: replicas for unknown workload {replica['name']}")
        for doc in hits:
            doc["spec"]["replicas"] = replica["count"]
    for image in spec.get("images", []):
        for doc in docs:
            for container in _all_containers(doc):
                container["image"] = _retag(container["image"], image)
    seen: set[tuple[str, str, str]] = set()
    for doc in docs:
        key = (doc["kind"], doc["metadata"].get("namespace", ""), doc["metadata"]["name"])
        if key in seen:
            raise KustomizeError(f"{kfile}: {key} defined twice")
        seen.add(key)
    return docs


def _apply_patch(docs: list[Doc], patch: Doc, directory: Path) -> None:
    text = patch["patch"] if "patch" in patch else (directory / patch["path"]).read_text()
    ops = yaml.safe_load(text)
    if not isinstance(ops, list):
        raise KustomizeError("strategic-merge patches are not implemented; use JSON 6902 ops")
    target = patch.get("target") or {}
    if set(target) - {"kind", "name", "group", "version"}:
        raise KustomizeError(f"patch target {target} uses selectors not implemented here")
    hits = [d for d in docs if _matches_target(d, target)]
    if not hits:
        raise KustomizeError(f"patch target {target} matches nothing")
    for doc in hits:
        for op in ops:
            _json_patch(doc, op)


def _matches_target(doc: Doc, target: Doc) -> bool:
    group, _, version = doc["apiVersion"].rpartition("/")
    return (
        target.get("kind", doc["kind"]) == doc["kind"]
        and target.get("name", doc["metadata"]["name"]) == doc["metadata"]["name"]
        and target.get("group", group) == group
        and target.get("version", version) == version
    )


def _json_patch(doc: Doc, op: Doc) -> None:
    """RFC 6902 add / replace / remove / test on one document."""
    tokens = [t.replace("~1", "/").replace("~0", "~") for t in op["path"].split("/")[1:]]
    parent: Any = doc
    for token in tokens[:-1]:
        parent = parent[int(token)] if isinstance(parent, list) else parent[token]
    last = tokens[-1]
    kind = op["op"]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if kind == "add":
            parent.insert(index, copy.deepcopy(op["value"]))
            return
        if not 0 <= index < len(parent):
            raise KustomizeError(f"{op}: index out of range")
    elif kind != "add" and last not in parent:
        raise KustomizeError(f"{op}: path does not exist")
    else:
        index = last
    if kind in ("add", "replace"):
        parent[index] = copy.deepcopy(op["value"])
    elif kind == "remove":
        del parent[index]
    elif kind == "test":
        if parent[index] != op["value"]:
            raise KustomizeError(f"{op}: test failed")
    else:
        raise KustomizeError(f"JSON patch op {kind!r} is not implemented")


def _split_image(image: str) -> tuple[str, str]:
    """``repo/name:tag`` -> (``repo/name``, ``:tag``); digests keep their ``@``."""
    if "@" in image:
        name, _, digest = image.partition("@")
        return name, "@" + digest
    name, sep, tag = image.rpartition(":")
    if sep and "/" not in tag:
        return name, ":" + tag
    return image, ""


def _retag(image: str, rule: Doc) -> str:
    name, suffix = _split_image(image)
    if name != rule["name"]:
        return image
    if "digest" in rule:
        suffix = "@" + rule["digest"]
    elif "newTag" in rule:
        suffix = ":" + str(rule["newTag"])
    return rule.get("newName", name) + suffix


# --------------------------------------------------------------------------------------------
# Helpers over rendered documents
# --------------------------------------------------------------------------------------------


def pod_spec(doc: Doc) -> Doc | None:
    kind = doc["kind"]
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return doc["spec"]["template"]["spec"]
    if kind == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if kind == "Pod":
        return doc["spec"]
    return None


def pod_labels(doc: Doc) -> dict[str, str]:
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["metadata"].get("labels", {})
    return doc["spec"]["template"]["metadata"].get("labels", {})


def _all_containers(doc: Doc) -> Iterator[Doc]:
    spec = pod_spec(doc)
    if spec:
        yield from spec.get("initContainers", [])
        yield from spec.get("containers", [])


class Rendered:
    def __init__(self, docs: list[Doc]):
        self.docs = docs

    def of(self, kind: str) -> list[Doc]:
        return [d for d in self.docs if d["kind"] == kind]

    def get(self, kind: str, name: str) -> Doc:
        for doc in self.of(kind):
            if doc["metadata"]["name"] == name:
                return doc
        raise AssertionError(f"no {kind} {name} in the rendering")

    def workloads(self) -> list[Doc]:
        return [d for d in self.docs if pod_spec(d) is not None]

    def container(self, kind: str, name: str, container: str | None = None) -> Doc:
        spec = pod_spec(self.get(kind, name))
        assert spec is not None
        containers = spec["containers"]
        return next(c for c in containers if c["name"] == (container or name))

    def config(self) -> dict[str, str]:
        return self.get("ConfigMap", "convtrack-config")["data"]

    def app_containers(self) -> Iterator[tuple[Doc, Doc]]:
        """(workload, container) for every container running the convtrack image."""
        for doc in self.workloads():
            for container in _all_containers(doc):
                if _split_image(container["image"])[0].rsplit("/", 1)[-1] == APP_IMAGE:
                    yield doc, container

    def pods_selected(self, selector: Doc) -> list[Doc]:
        return [d for d in self.workloads() if selector_matches(selector, pod_labels(d))]


def selector_matches(selector: Doc | None, labels: dict[str, str]) -> bool:
    """A LabelSelector (matchLabels/matchExpressions) or a Service's plain map."""
    if selector is None:
        return False
    if "matchLabels" not in selector and "matchExpressions" not in selector:
        selector = {"matchLabels": selector}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, operator, values = expr["key"], expr["operator"], expr.get("values", [])
        ok = {
            "In": key in labels and labels[key] in values,
            "NotIn": key not in labels or labels[key] not in values,
            "Exists": key in labels,
            "DoesNotExist": key not in labels,
        }[operator]
        if not ok:
            return False
    return True


def container_ports(doc: Doc) -> dict[str | int, int]:
    """Port names and numbers of every container of a workload -> number."""
    ports: dict[str | int, int] = {}
    for container in _all_containers(doc):
        for port in container.get("ports", []):
            ports[port["containerPort"]] = port["containerPort"]
            if "name" in port:
                ports[port["name"]] = port["containerPort"]
    return ports


def port_of(container: Doc, ref: str | int) -> int:
    for port in container.get("ports", []):
        if ref in (port.get("name"), port["containerPort"]):
            return int(port["containerPort"])
    raise AssertionError(f"container {container['name']} has no port {ref!r}")


def listen_port(config: dict[str, str], key: str) -> int:
    host, port = split_host_port(config[key])
    assert host in ("0.0.0.0", "::"), f"{key}={config[key]} is not reachable from the kubelet"
    return port


_QUANTITY = re.compile(r"^([0-9.]+)([a-zA-Z]*)$")
_FACTORS = {
    "": 1,
    "m": 1e-3,
    "k": 1e3,
    "M": 1e6,
    "G": 1e9,
    "T": 1e12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


def quantity(value: str | int | float) -> float:
    match = _QUANTITY.match(str(value))
    assert match, f"bad quantity {value!r}"
    return float(match.group(1)) * _FACTORS[match.group(2)]


def example_secret() -> dict[str, str]:
    docs = render(K8S / "example-secrets")
    (secret,) = docs
    return secret["stringData"]


def env_of(rendered: Rendered, container: Doc) -> dict[str, str]:
    """The environment a container gets: envFrom ConfigMaps, then env (secrets resolved from
    the example Secret, whose keys are the contract for the real one)."""
    env: dict[str, str] = {}
    secret = example_secret()
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(rendered.get("ConfigMap", source["configMapRef"]["name"])["data"])
        else:
            assert source["secretRef"]["name"] == SECRET_NAME
            env.update(secret)
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        elif "secretKeyRef" in var["valueFrom"]:
            ref = var["valueFrom"]["secretKeyRef"]
            assert ref["name"] == SECRET_NAME
            env[var["name"]] = secret[ref["key"]]
        elif "configMapKeyRef" in var["valueFrom"]:
            ref = var["valueFrom"]["configMapKeyRef"]
            env[var["name"]] = rendered.get("ConfigMap", ref["name"])["data"][ref["key"]]
    return env


def clickhouse_xml(rendered: Rendered, key: str) -> ET.Element:
    return ET.fromstring(rendered.get("ConfigMap", "clickhouse-config")["data"][key])


def nats_routes(rendered: Rendered) -> list[str]:
    conf = rendered.get("ConfigMap", "nats-config")["data"]["nats.conf"]
    block = re.search(r"cluster\s*\{.*?routes\s*:\s*\[(.*?)\]", conf, re.S)
    return re.findall(r"nats://[^\s,\]]+", block.group(1)) if block else []


def dockerfile_user_and_entrypoint() -> tuple[int, list[str]]:
    """The final stage's numeric USER and exec-form ENTRYPOINT (see test_deploy_dockerfile)."""
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    final = re.split(r"(?im)^FROM\s", text)[-1]
    user = re.findall(r"(?im)^USER\s+(\S+)", final)[-1]
    entry = re.findall(r"(?im)^ENTRYPOINT\s+(\[.*\])", final)[-1]
    return int(user.split(":")[0]), yaml.safe_load(entry)


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module", params=sorted(OVERLAYS))
def overlay(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def rendered(overlay: str) -> Rendered:
    return Rendered(render(K8S / "overlays" / overlay))


_RENDER_CACHE: dict[str, Rendered] = {}


def rendering(name: str) -> Rendered:
    if name not in _RENDER_CACHE:
        path = K8S / "base" if name == "base" else K8S / "overlays" / name
        _RENDER_CACHE[name] = Rendered(render(path))
    return _RENDER_CACHE[name]


# --------------------------------------------------------------------------------------------
# The renderer itself
# --------------------------------------------------------------------------------------------


def test_renderer_applies_patches_images_replicas_namespace(tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "kustomization.yaml").write_text("resources: [d.yaml]\n")
    (tmp_path / "base" / "d.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\n"
        "spec:\n  replicas: 2\n  template:\n    metadata: {labels: {a: b}}\n"
        "    spec:\n      containers:\n      - {name: c, image: 'app:1', args: [x, y]}\n"
    )
    (tmp_path / "kustomization.yaml").write_text(
        "namespace: ns\nresources: [base]\nlabels: [{pairs: {team: t}}]\n"
        "images: [{name: app, newName: reg.example/app, newTag: '2'}]\n"
        "replicas: [{name: web, count: 5}]\n"
        "patches:\n- target: {kind: Deployment, name: web}\n  patch: |-\n"
        "    - {op: replace, path: /spec/template/spec/containers/0/args/1, value: z}\n"
        "    - {op: add, path: /spec/template/spec/containers/0/args/-, value: w}\n"
        "    - {op: add, path: /metadata/annotations, value: {k~1v: '1'}}\n"
    )
    (doc,) = render(tmp_path)
    assert doc["metadata"] == {
        "name": "web",
        "namespace": "ns",
        "labels": {"team": "t"},
        "annotations": {"k~1v": "1"},
    }
    container = doc["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == "reg.example/app:2"
    assert container["args"] == ["x", "z", "w"]
    assert doc["spec"]["replicas"] == 5
    assert doc["spec"]["template"]["metadata"]["labels"] == {"a": "b"}


def test_renderer_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\nnamePrefix: x-\n")
    with pytest.raises(KustomizeError, match="namePrefix"):
        render(tmp_path)
    (tmp_path / "kustomization.yaml").write_text(
        "resources: []\npatches:\n- target: {kind: Deployment, name: nope}\n"
        "  patch: '[{op: remove, path: /spec}]'\n"
    )
    with pytest.raises(KustomizeError, match="matches nothing"):
        render(tmp_path)


def _kubectl_kustomize() -> str | None:
    kubectl = shutil.which("kubectl")
    if not kubectl:
        return None
    try:
        out = subprocess.run(
            [kubectl, "version", "--client", "-o", "yaml"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r"kustomizeVersion:\s*v?(\d+)", out.stdout)
    # kubectl before 1.21 bundles kustomize v2, which lacks `labels` and `patches` targets.
    return kubectl if found and int(found.group(1)) >= 4 else None


@pytest.mark.parametrize("name", ["base", *sorted(OVERLAYS)])
def test_renderer_agrees_with_kubectl_kustomize(name: str) -> None:
    kubectl = _kubectl_kustomize()
    if kubectl is None:
        pytest.skip("no kubectl with kustomize v4+ on this machine")
    path = K8S / "base" if name == "base" else K8S / "overlays" / name
    out = subprocess.run(
        [kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=60, check=True
    ).stdout

    def keyed(docs: list[Doc]) -> dict[tuple[str, str, str], Doc]:
        return {
            (d["kind"], d["metadata"].get("namespace", ""), d["metadata"]["name"]): d for d in docs
        }

    theirs = keyed([d for d in yaml.safe_load_all(out) if d])
    ours = keyed(rendering(name).docs)
    assert sorted(ours) == sorted(theirs)
    for key, doc in ours.items():
        assert doc == theirs[key], f"{key} differs from kubectl kustomize"


# --------------------------------------------------------------------------------------------
# Schemas
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBE_VERSIONS)
@pytest.mark.parametrize("name", ["base", *sorted(OVERLAYS), "example-secrets"])
def test_every_manifest_validates_against_the_kubernetes_schema(name: str, version: str) -> None:
    docs = render(K8S / name) if name == "example-secrets" else rendering(name).docs
    assert docs
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path)
            pytest.fail(f"{name}: {doc['kind']}/{doc['metadata']['name']} at {where}: {exc}")


def test_every_yaml_file_parses() -> None:
    files = sorted(K8S.rglob("*.yaml"))
    assert len(files) >= 10
    for path in files:
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc is None or isinstance(doc, dict), path


def test_overlays_set_their_namespace(rendered: Rendered, overlay: str) -> None:
    namespace = OVERLAYS[overlay]
    assert rendered.get("Namespace", namespace)
    for doc in rendered.docs:
        if doc["kind"] not in _CLUSTER_SCOPED:
            assert doc["metadata"]["namespace"] == namespace, doc["metadata"]["name"]


# --------------------------------------------------------------------------------------------
# Consistency with the code: settings, ports, probes
# --------------------------------------------------------------------------------------------


def test_every_ct_name_is_a_settings_field(rendered: Rendered) -> None:
    used: set[str] = set()
    for doc in rendered.workloads():
        for container in _all_containers(doc):
            used.update(v["name"] for v in container.get("env", []))
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    used.update(rendered.get("ConfigMap", source["configMapRef"]["name"])["data"])
    used.update(rendered.config())
    used.update(k for k in example_secret() if k.startswith("CT_"))
    ct_used = {name for name in used if name.startswith("CT_")}
    assert ct_used, "no CT_ settings found at all"
    assert not ct_used - CT_NAMES, f"not fields of shared.settings.Settings: {ct_used - CT_NAMES}"
    # The convtrack containers get nothing but CT_ settings (Settings reads no other variable),
    # and secrets one key at a time: a whole-Secret envFrom would hand the IVR the ClickHouse
    # password.
    for _doc, container in rendered.app_containers():
        names = {v["name"] for v in container.get("env", [])}
        for source in container.get("envFrom", []):
            assert "secretRef" not in source, container["name"]
            names.update(rendered.get("ConfigMap", source["configMapRef"]["name"])["data"])
        assert all(n.startswith("CT_") for n in names), names


def test_settings_accept_every_containers_environment(
    rendered: Rendered, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The values parse: types, bounds, URL schemes (Settings validates them)."""
    for doc, container in rendered.app_containers():
        with monkeypatch.context() as env:
            for name in CT_NAMES:
                env.delenv(name, raising=False)
            for name, value in env_of(rendered, container).items():
                env.setenv(name, value)
            settings = Settings()
        assert settings.nats_servers, doc["metadata"]["name"]


def test_container_ports_match_the_listen_settings(rendered: Rendered) -> None:
    config = rendered.config()
    api = rendered.container("Deployment", "api")
    ivr = rendered.container("Deployment", "ivr")
    aggregator = rendered.container("Deployment", "aggregator")
    assert port_of(api, "http") == listen_port(config, "CT_API_LISTEN")
    assert port_of(ivr, "esl") == listen_port(config, "CT_IVR_LISTEN") == 8084
    assert port_of(ivr, "metrics") == listen_port(config, "CT_IVR_METRICS_LISTEN")
    assert port_of(aggregator, "metrics") == listen_port(config, "CT_AGGREGATOR_METRICS_LISTEN")
    # No stray ports: exactly what the service listens on.
    assert {p["containerPort"] for p in api["ports"]} == {port_of(api, "http")}
    assert {p["containerPort"] for p in aggregator["ports"]} == {port_of(aggregator, "metrics")}


HEALTH_LISTEN = {
    "api": "CT_API_LISTEN",
    "ivr": "CT_IVR_METRICS_LISTEN",
    "aggregator": "CT_AGGREGATOR_METRICS_LISTEN",
}


@pytest.mark.parametrize("service", SERVICES)
def test_probes_use_the_health_routes_on_the_health_port(rendered: Rendered, service: str) -> None:
    container = rendered.container("Deployment", service)
    health_port = listen_port(rendered.config(), HEALTH_LISTEN[service])
    expected = {
        "readinessProbe": "/readyz",
        "livenessProbe": "/healthz",
        "startupProbe": "/healthz",
    }
    for probe, path in expected.items():
        if probe == "startupProbe" and probe not in container:
            continue
        get = container[probe]["httpGet"]
        assert get["path"] == path, (service, probe)
        assert port_of(container, get["port"]) == health_port, (service, probe)


def test_every_probe_targets_a_declared_port(rendered: Rendered) -> None:
    for doc in rendered.workloads():
        for container in _all_containers(doc):
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                if probe in container and "httpGet" in container[probe]:
                    port_of(container, container[probe]["httpGet"]["port"])


def test_prometheus_annotations_point_at_metrics_ports(rendered: Rendered) -> None:
    scraped = set()
    for doc in rendered.workloads():
        notes = doc["spec"]["template"]["metadata"].get("annotations", {})
        if notes.get("prometheus.io/scrape") != "true":
            continue
        scraped.add(doc["metadata"]["name"])
        assert notes["prometheus.io/path"] == "/metrics"
        assert int(notes["prometheus.io/port"]) in container_ports(doc).values()
    assert scraped == {"api", "ivr", "aggregator", "nats", "clickhouse"}
    config = rendered.config()
    for service, key in HEALTH_LISTEN.items():
        notes = rendered.get("Deployment", service)["spec"]["template"]["metadata"]["annotations"]
        assert int(notes["prometheus.io/port"]) == listen_port(config, key)


def test_ivr_service_exposes_the_event_socket(rendered: Rendered, overlay: str) -> None:
    service = rendered.get("Service", "ivr")
    (port,) = service["spec"]["ports"]
    assert (port["port"], port.get("protocol", "TCP")) == (8084, "TCP")
    ivr = rendered.container("Deployment", "ivr")
    assert port_of(ivr, port["targetPort"]) == listen_port(rendered.config(), "CT_IVR_LISTEN")
    if overlay == "prod":
        assert service["spec"]["type"] == "LoadBalancer"
        assert service["spec"]["externalTrafficPolicy"] == "Local"


def test_services_select_pods_that_have_their_target_ports(rendered: Rendered) -> None:
    for service in rendered.of("Service"):
        pods = rendered.pods_selected(service["spec"]["selector"])
        assert pods, f"Service {service['metadata']['name']} selects no pods"
        for port in service["spec"]["ports"]:
            for pod in pods:
                ports = container_ports(pod)
                assert port.get("targetPort", port["port"]) in ports, (
                    service["metadata"]["name"],
                    port,
                )


def test_service_urls_point_at_services(rendered: Rendered) -> None:
    config = rendered.config()
    for url in Settings(nats_url=config["CT_NATS_URL"]).nats_servers:
        parts = urlparse(url)
        service = rendered.get("Service", parts.hostname or "")
        assert parts.port in {p["port"] for p in service["spec"]["ports"]}
    ch = urlparse(example_secret()["CT_CLICKHOUSE_URL"])
    service = rendered.get("Service", ch.hostname or "")
    assert ch.port in {p["port"] for p in service["spec"]["ports"]}
    assert port_of(rendered.container("StatefulSet", "clickhouse"), "native") == ch.port


# --------------------------------------------------------------------------------------------
# Migration Job, NATS cluster, ClickHouse cluster
# --------------------------------------------------------------------------------------------


def _migrate_argv(rendered: Rendered) -> list[str]:
    container = rendered.container("Job", "migrate")
    _uid, entrypoint = dockerfile_user_and_entrypoint()
    return list(container.get("command") or entrypoint) + list(container.get("args", []))


def test_migrate_job_runs_convtrack_migrate_with_the_cluster(rendered: Rendered) -> None:
    argv = _migrate_argv(rendered)
    assert argv[:2] == ["convtrack", "migrate"], argv
    parser = argparse.ArgumentParser()
    migrate_cli.add_arguments(parser)
    args = parser.parse_args(argv[2:])  # the real CLI accepts these options

    clusters = [c.tag for c in clickhouse_xml(rendered, "cluster.xml").find("remote_servers")]
    assert clusters == [args.cluster], "--cluster must name the cluster in cluster.xml"
    assert rendered.config()["CT_CLICKHOUSE_CLUSTER"] == args.cluster
    assert not args.print and not args.skip_nats and not args.skip_clickhouse

    nats = rendered.get("StatefulSet", "nats")
    assert args.replicas == nats["spec"]["replicas"], "--replicas must equal the NATS peers"
    job = rendered.get("Job", "migrate")
    assert job["spec"]["template"]["spec"]["restartPolicy"] in ("Never", "OnFailure")
    assert job["spec"]["backoffLimit"] >= 3, "NATS/ClickHouse may start after the Job"


def test_nats_cluster_routes_match_the_statefulset(rendered: Rendered) -> None:
    nats = rendered.get("StatefulSet", "nats")
    replicas = nats["spec"]["replicas"]
    headless = rendered.get("Service", nats["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is True
    expected = [f"nats://nats-{i}.{headless['metadata']['name']}:6222" for i in range(replicas)]
    assert nats_routes(rendered) == (expected if replicas > 1 else [])
    container = rendered.container("StatefulSet", "nats")
    assert {"client", "cluster", "monitor"} <= {p["name"] for p in container["ports"]}
    conf = rendered.get("ConfigMap", "nats-config")["data"]["nats.conf"]
    assert "jetstream" in conf and "store_dir: /data" in conf
    # The ports the server opens are the ports the pod declares (probes, Services, policies).
    assert re.search(r"(?m)^listen:\s*0\.0\.0\.0:(\d+)", conf).group(1) == str(
        port_of(container, "client")
    )
    monitor = port_of(container, "monitor")
    assert re.search(r"(?m)^http:\s*0\.0\.0\.0:(\d+)", conf).group(1) == str(monitor)
    if replicas > 1:
        cluster_listen = re.search(r"cluster\s*\{\s*name:.*?listen:\s*0\.0\.0\.0:(\d+)", conf, re.S)
        assert cluster_listen and cluster_listen.group(1) == str(port_of(container, "cluster"))
    exporter = rendered.container("StatefulSet", "nats", "metrics")
    assert exporter["args"][-1] == f"http://localhost:{monitor}"
    assert f"-port={port_of(exporter, 'metrics')}" in exporter["args"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    claims = {c["metadata"]["name"]: c for c in nats["spec"]["volumeClaimTemplates"]}
    assert mounts["/data"] in claims, "JetStream's store must be on the PVC"
    store = re.search(r"max_file_store:\s*(\d+)([KMGT]B)", conf)
    assert store, "max_file_store keeps JetStream within its volume"
    size = float(store.group(1)) * _FACTORS[store.group(2)[0] + "i"]
    volume = quantity(claims[mounts["/data"]]["spec"]["resources"]["requests"]["storage"])
    assert size < volume


def test_clickhouse_cluster_matches_the_statefulset(rendered: Rendered) -> None:
    ch = rendered.get("StatefulSet", "clickhouse")
    replicas = ch["spec"]["replicas"]
    headless = ch["spec"]["serviceName"]
    assert rendered.get("Service", headless)["spec"]["publishNotReadyAddresses"] is True
    hosts = [f"clickhouse-{i}.{headless}" for i in range(replicas)]

    cluster = clickhouse_xml(rendered, "cluster.xml")
    (shard,) = cluster.find("remote_servers")[0].findall("shard")
    assert [r.findtext("host") for r in shard.findall("replica")] == hosts
    assert shard.findtext("internal_replication") == "true"
    macros = cluster.find("macros")
    # The Replicated* engines the migrations render use exactly these macros.
    engine = Target(cluster="x").render("{engine:answers}")
    for macro in re.findall(r"\{(\w+)\}", engine):
        assert macros.find(macro) is not None, f"macro {{{macro}}} is not defined"
    assert macros.find("replica").get("from_env") == "POD_NAME"

    keeper = clickhouse_xml(rendered, "keeper.xml")
    servers = keeper.find("keeper_server/raft_configuration").findall("server")
    assert [(s.findtext("id"), s.findtext("hostname")) for s in servers] == [
        (str(i + 1), host) for i, host in enumerate(hosts)
    ]
    assert [n.findtext("host") for n in keeper.find("zookeeper").findall("node")] == hosts
    container = rendered.container("StatefulSet", "clickhouse")
    server = clickhouse_xml(rendered, "server.xml")
    declared = {
        "http": server.findtext("http_port"),
        "native": server.findtext("tcp_port"),
        "interserver": server.findtext("interserver_http_port"),
        "metrics": server.findtext("prometheus/port"),
        "keeper": keeper.findtext("keeper_server/tcp_port"),
    }
    for name, value in declared.items():
        assert value == str(port_of(container, name)), name
    assert {s.findtext("port") for s in servers} == {str(port_of(container, "raft"))}
    assert {n.findtext("port") for n in keeper.find("zookeeper").findall("node")} == {
        declared["keeper"]
    }
    assert {r.findtext("port") for r in shard.findall("replica")} == {declared["native"]}
    assert "KEEPER_SERVER_ID=$$(( ${POD_NAME##*-} + 1 ))" in container["args"][0]
    env = {v["name"] for v in container["env"]}
    for element in (*cluster.iter(), *keeper.iter()):
        if element.get("from_env"):
            assert element.get("from_env") in env | {"KEEPER_SERVER_ID"}
    for element in clickhouse_xml(rendered, "server.xml").iter():
        if element.get("from_env"):
            assert element.get("from_env") in env
    # The services' user exists and reads its password from the same Secret key.
    users = clickhouse_xml(rendered, "users.xml")
    ch_url = urlparse(example_secret()["CT_CLICKHOUSE_URL"])
    assert users.find(f"users/{ch_url.username}/password").get("from_env") in env


def test_example_secret_is_consistent_and_clearly_an_example() -> None:
    secret = example_secret()
    url = urlparse(secret["CT_CLICKHOUSE_URL"])
    assert url.password == secret["clickhouse-password"]
    assert url.path == "/default"
    for key, value in secret.items():
        if key != "api-keys":
            assert "example" in value, f"{key} does not look like an example value"
    # The API's own parser reads the example keys file (hashes, tenants, roles).
    principals = parse_keys_file(secret["api-keys"], "example api-keys")
    assert {(p.tenant_id, p.can_write) for p in principals.values()} == {
        ("demo", True),
        ("demo", False),
    }


def test_secret_and_config_references_resolve(rendered: Rendered, overlay: str) -> None:
    secret_keys = set(example_secret())
    rendered_secrets = {s["metadata"]["name"] for s in rendered.of("Secret")}
    # prod gets its Secret out of band; dev renders the example one.
    assert rendered_secrets == ({SECRET_NAME} if overlay == "dev" else set())

    def check_secret(name: str, key: str | None) -> None:
        assert name == SECRET_NAME
        if key is not None:
            assert key in secret_keys, key

    for doc in rendered.workloads():
        spec = pod_spec(doc)
        assert spec is not None
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                for item in volume["secret"].get("items", [{"key": None}]):
                    check_secret(volume["secret"]["secretName"], item["key"])
            if "configMap" in volume:
                data = rendered.get("ConfigMap", volume["configMap"]["name"])["data"]
                for item in volume["configMap"].get("items", []):
                    assert item["key"] in data
        for container in _all_containers(doc):
            mounts = {m["name"] for m in container.get("volumeMounts", [])}
            declared = {v["name"] for v in spec.get("volumes", [])} | {
                c["metadata"]["name"] for c in doc["spec"].get("volumeClaimTemplates", [])
            }
            assert mounts <= declared, (doc["metadata"]["name"], mounts - declared)
            for var in container.get("env", []):
                ref = var.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    check_secret(ref["name"], ref["key"])
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    rendered.get("ConfigMap", source["configMapRef"]["name"])


def test_api_keys_file_is_mounted_from_the_secret(rendered: Rendered) -> None:
    path = Path(rendered.config()["CT_API_KEYS_FILE"])
    api = rendered.get("Deployment", "api")
    container = rendered.container("Deployment", "api")
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(path.parent)]
    assert "subPath" not in mount, "a subPath mount never sees a rotated Secret"
    volume = next(
        v for v in api["spec"]["template"]["spec"]["volumes"] if v["name"] == mount["name"]
    )
    assert volume["secret"]["secretName"] == SECRET_NAME
    assert {"key": "api-keys", "path": path.name} in volume["secret"]["items"]


# --------------------------------------------------------------------------------------------
# Security, resources, availability
# --------------------------------------------------------------------------------------------


def test_every_container_runs_non_root_read_only_without_capabilities(rendered: Rendered) -> None:
    uid, _entry = dockerfile_user_and_entrypoint()
    for doc in rendered.workloads():
        spec = pod_spec(doc)
        assert spec is not None
        name = doc["metadata"]["name"]
        pod_sc = spec.get("securityContext", {})
        assert spec.get("automountServiceAccountToken") is False, name
        assert pod_sc.get("seccompProfile", {}).get("type") == "RuntimeDefault", name
        for container in _all_containers(doc):
            sc = {**pod_sc, **container.get("securityContext", {})}
            where = f"{name}/{container['name']}"
            assert sc.get("runAsNonRoot") is True, where
            assert sc.get("runAsUser", 1) != 0, where
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
            assert not sc.get("capabilities", {}).get("add"), where
    for doc, container in rendered.app_containers():
        spec = pod_spec(doc)
        assert spec is not None
        assert spec["securityContext"]["runAsUser"] == uid, "same uid as the image's USER"
        tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
        assert tmp, f"{doc['metadata']['name']} has no writable /tmp"
        volume = next(v for v in spec["volumes"] if v["name"] == tmp[0]["name"])
        assert "emptyDir" in volume


def test_every_container_has_requests_and_limits(rendered: Rendered) -> None:
    for doc in rendered.workloads():
        for container in _all_containers(doc):
            where = f"{doc['metadata']['name']}/{container['name']}"
            resources = container.get("resources", {})
            for resource in ("cpu", "memory"):
                request = quantity(resources["requests"][resource])
                limit = quantity(resources["limits"][resource])
                assert 0 < request <= limit, (where, resource)


def test_images_are_pinned_and_the_app_image_is_the_overlays(
    rendered: Rendered, overlay: str
) -> None:
    spec = yaml.safe_load((K8S / "overlays" / overlay / "kustomization.yaml").read_text())
    (rule,) = [i for i in spec["images"] if i["name"] == APP_IMAGE]
    expected = f"{rule['newName']}:{rule['newTag']}"
    for doc in rendered.workloads():
        for container in _all_containers(doc):
            _name, tag = _split_image(container["image"])
            assert tag and tag != ":latest", container["image"]
    apps = list(rendered.app_containers())
    assert {d["metadata"]["name"] for d, _c in apps} == {*SERVICES, "migrate"}
    assert {c["image"] for _d, c in apps} == {expected}


def test_disruption_budgets_and_autoscalers(rendered: Rendered) -> None:
    budgets = {p["metadata"]["name"]: p for p in rendered.of("PodDisruptionBudget")}
    assert set(budgets) == {*SERVICES, "nats", "clickhouse"}
    for name, pdb in budgets.items():
        pods = rendered.pods_selected(pdb["spec"]["selector"])
        assert [p["metadata"]["name"] for p in pods] == [name]
        assert pdb["spec"].get("maxUnavailable") == 1, "quorum peers leave one at a time"
    hpas = {h["metadata"]["name"]: h for h in rendered.of("HorizontalPodAutoscaler")}
    assert set(hpas) == {"api", "aggregator"}
    for name, hpa in hpas.items():
        ref = hpa["spec"]["scaleTargetRef"]
        assert (ref["kind"], ref["name"]) == ("Deployment", name)
        target = rendered.get("Deployment", name)
        low, high = hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]
        assert 1 <= low <= high
        assert low <= target["spec"]["replicas"] <= high
        cpu = rendered.container("Deployment", name)["resources"]["requests"]["cpu"]
        assert quantity(cpu) > 0, "CPU utilisation needs a CPU request"


def test_ivr_termination_grace_covers_a_survey(rendered: Rendered) -> None:
    ivr = rendered.get("Deployment", "ivr")
    spec = ivr["spec"]["template"]["spec"]
    container = rendered.container("Deployment", "ivr")
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    drain = float(rendered.config()["CT_IVR_GRACE_S"])
    assert drain >= 30, "surveys last minutes; a shorter drain cuts them off"
    # After the drain the IVR flushes its buffer (at least FLUSH_MIN_S) and closes its NATS
    # tasks (3 + 3 + 5 s timeouts in IvrService.close).
    after_drain = FLUSH_MIN_S + 11
    assert spec["terminationGracePeriodSeconds"] >= int(pre_stop[1]) + drain + after_drain
    strategy = ivr["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxUnavailable"] == 0, "a rollout must not drop call capacity"


# --------------------------------------------------------------------------------------------
# NetworkPolicies: a small evaluator, then the flows the product needs (and some it must not)
# --------------------------------------------------------------------------------------------

Peer = dict[str, Any]  # {"labels": {...}, "namespace_labels": {...}} or {"ip": "..."}


def _peer_ok(rule_peer: Doc, peer: Peer, namespace: str) -> bool:
    if "ipBlock" in rule_peer:
        if "ip" not in peer:
            return False
        return ipaddress.ip_address(peer["ip"]) in ipaddress.ip_network(
            rule_peer["ipBlock"]["cidr"]
        )
    if "ip" in peer:
        return False
    ns_labels = peer.get("namespace_labels", {"kubernetes.io/metadata.name": namespace})
    if "namespaceSelector" in rule_peer:
        if not selector_matches(rule_peer["namespaceSelector"] or {"matchLabels": {}}, ns_labels):
            return False
    elif ns_labels.get("kubernetes.io/metadata.name") != namespace:
        return False
    if "podSelector" in rule_peer:
        return selector_matches(rule_peer["podSelector"] or {"matchLabels": {}}, peer["labels"])
    return True


def _allowed(policies: list[Doc], direction: str, subject: Doc, peer: Peer, port: int) -> bool:
    """Whether the policies that select ``subject`` admit ``peer`` on ``port``."""
    kind = "Ingress" if direction == "ingress" else "Egress"
    key = "from" if direction == "ingress" else "to"
    namespace = subject["metadata"].get("namespace", "")
    selecting = [
        p
        for p in policies
        if kind in p["spec"].get("policyTypes", ["Ingress"])
        and selector_matches(p["spec"]["podSelector"] or {"matchLabels": {}}, pod_labels(subject))
    ]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get(direction, []):
            ports = rule.get("ports")
            if ports and not any(p.get("port") == port for p in ports):
                continue
            peers = rule.get(key)
            if not peers or any(_peer_ok(rp, peer, namespace) for rp in peers):
                return True
    return False


def _flow(rendered: Rendered, source: str | Peer, dest: str, port: int) -> bool:
    policies = rendered.of("NetworkPolicy")
    workloads = {d["metadata"]["name"]: d for d in rendered.workloads()}
    target = workloads[dest]
    if isinstance(source, str):
        src = workloads[source]
        peer_in: Peer = {"labels": pod_labels(src)}
        peer_out: Peer = {"labels": pod_labels(target)}
        if not _allowed(policies, "egress", src, peer_out, port):
            return False
    else:
        peer_in = source
    assert port in container_ports(target).values(), f"{dest} does not listen on {port}"
    return _allowed(policies, "ingress", target, peer_in, port)


PROMETHEUS: Peer = {
    "labels": {"app.kubernetes.io/name": "prometheus"},
    "namespace_labels": {"kubernetes.io/metadata.name": "monitoring"},
}
FREESWITCH_POD: Peer = {
    "labels": {"app.kubernetes.io/name": "freeswitch"},
    "namespace_labels": {"kubernetes.io/metadata.name": "voice"},
}
FREESWITCH_HOST: Peer = {"ip": "192.0.2.10"}
INGRESS: Peer = {
    "labels": {"app.kubernetes.io/name": "ingress-nginx"},
    "namespace_labels": {"kubernetes.io/metadata.name": "ingress-nginx"},
}
STRANGER: Peer = {
    "labels": {"app": "other"},
    "namespace_labels": {"kubernetes.io/metadata.name": "x"},
}

ALLOWED_FLOWS = [
    (FREESWITCH_POD, "ivr", 8084),
    (FREESWITCH_HOST, "ivr", 8084),
    (INGRESS, "api", 8080),
    (FREESWITCH_HOST, "api", 8080),
    ("api", "nats", 4222),
    ("ivr", "nats", 4222),
    ("aggregator", "nats", 4222),
    ("migrate", "nats", 4222),
    ("api", "clickhouse", 9000),
    ("aggregator", "clickhouse", 9000),
    ("migrate", "clickhouse", 9000),
    ("nats", "nats", 6222),
    ("clickhouse", "clickhouse", 9009),
    ("clickhouse", "clickhouse", 9181),
    ("clickhouse", "clickhouse", 9234),
    ("clickhouse", "clickhouse", 9000),
    (PROMETHEUS, "api", 8080),
    (PROMETHEUS, "ivr", 9103),
    (PROMETHEUS, "aggregator", 9102),
    (PROMETHEUS, "nats", 7777),
    (PROMETHEUS, "clickhouse", 9363),
]

DENIED_FLOWS = [
    (STRANGER, "ivr", 8084),
    (STRANGER, "api", 8080),
    (STRANGER, "nats", 4222),
    (STRANGER, "clickhouse", 9000),
    (PROMETHEUS, "ivr", 8084),
    ("ivr", "clickhouse", 9000),  # the IVR never talks to ClickHouse
    ("ivr", "api", 8080),
    ("api", "nats", 6222),
    ("aggregator", "clickhouse", 9181),
    ("nats", "clickhouse", 9000),
]


def _label(flow: tuple[Any, str, int]) -> str:
    source = flow[0] if isinstance(flow[0], str) else (flow[0].get("ip") or flow[0]["labels"])
    return f"{source}->{flow[1]}:{flow[2]}"


@pytest.mark.parametrize("flow", ALLOWED_FLOWS, ids=_label)
def test_network_policies_admit_what_each_part_needs(
    rendered: Rendered, flow: tuple[Any, str, int]
) -> None:
    assert _flow(rendered, *flow)


@pytest.mark.parametrize("flow", DENIED_FLOWS, ids=_label)
def test_network_policies_deny_everything_else(
    rendered: Rendered, flow: tuple[Any, str, int]
) -> None:
    assert not _flow(rendered, *flow)


def test_network_policies_select_real_pods_and_deny_by_default(rendered: Rendered) -> None:
    policies = rendered.of("NetworkPolicy")
    deny = rendered.get("NetworkPolicy", "default-deny")["spec"]
    assert deny["podSelector"] == {} and set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    for policy in policies:
        selector = policy["spec"]["podSelector"]
        if selector:
            assert rendered.pods_selected(selector), policy["metadata"]["name"]
        for direction, key in (("ingress", "from"), ("egress", "to")):
            for rule in policy["spec"].get(direction, []):
                for peer in rule.get(key, []):
                    # Same-namespace pod selectors must match something we deploy.
                    if "podSelector" in peer and "namespaceSelector" not in peer:
                        assert rendered.pods_selected(peer["podSelector"]), peer
    # Everything we deploy is covered by a policy of its own besides the default deny.
    for doc in rendered.workloads():
        own = [
            p
            for p in policies
            if p["spec"]["podSelector"]
            and selector_matches(p["spec"]["podSelector"], pod_labels(doc))
        ]
        assert own, f"{doc['metadata']['name']} has no NetworkPolicy of its own"


# --------------------------------------------------------------------------------------------
# Overlay specifics
# --------------------------------------------------------------------------------------------


def test_dev_is_one_of_each() -> None:
    dev = rendering("dev")
    for kind in ("Deployment", "StatefulSet"):
        for doc in dev.of(kind):
            assert doc["spec"]["replicas"] == 1, doc["metadata"]["name"]
    for hpa in dev.of("HorizontalPodAutoscaler"):
        assert hpa["spec"]["minReplicas"] == hpa["spec"]["maxReplicas"] == 1
    argv = _migrate_argv(dev)
    assert argv[argv.index("--replicas") + 1] == "1"
    assert nats_routes(dev) == []


def test_prod_is_replicated_with_json_logs() -> None:
    prod, dev = rendering("prod"), rendering("dev")
    assert prod.config()["CT_LOG_FORMAT"] == "json"
    assert prod.get("StatefulSet", "nats")["spec"]["replicas"] == 3
    assert prod.get("StatefulSet", "clickhouse")["spec"]["replicas"] == 3
    argv = _migrate_argv(prod)
    assert argv[argv.index("--replicas") + 1] == "3"
    for name in SERVICES:
        assert prod.get("Deployment", name)["spec"]["replicas"] >= 2
        assert (
            prod.get("Deployment", name)["spec"]["replicas"]
            > dev.get("Deployment", name)["spec"]["replicas"]
        )
    public = urlparse(prod.config()["CT_API_PUBLIC_URL"])
    ingress = prod.get("Ingress", "api")
    assert public.hostname in {rule["host"] for rule in ingress["spec"]["rules"]}
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "api"
    assert backend["port"]["name"] in {
        p["name"] for p in prod.get("Service", "api")["spec"]["ports"]
    }


# --------------------------------------------------------------------------------------------
# docs/operations.md stays in step with the manifests
# --------------------------------------------------------------------------------------------


def test_operations_doc_names_every_secret_key_and_its_snippets_compile() -> None:
    text = (ROOT / "docs" / "operations.md").read_text()
    for key in example_secret():
        assert f"`{key}`" in text, f"docs/operations.md does not document Secret key {key}"
    snippets = re.findall(r"```python\n(.*?)```", text, re.S)
    assert snippets, "the dead-letter replay snippet is missing"
    for snippet in snippets:
        compile(snippet, "docs/operations.md", "exec")
    assert "ct.v1.deadletter" in text and "CT-Original-Subject" in text
