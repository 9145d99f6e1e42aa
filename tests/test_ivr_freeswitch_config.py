"""deploy/freeswitch agrees with the IVR and avoids the pitfalls of esl.md §5 (offline)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from services.ivr.call_info import call_info
from shared.settings import Settings, split_host_port

FS = Path(__file__).resolve().parents[1] / "deploy" / "freeswitch"
DIALPLAN = FS / "dialplan" / "default" / "50_conversion_tracking.xml"


def actions(extension: str) -> list[tuple[str, str]]:
    root = ET.parse(DIALPLAN).getroot()
    ext = root.find(f"./extension[@name='{extension}']")
    assert ext is not None, extension
    return [(a.get("application", ""), a.get("data", "")) for a in ext.iter("action")]


def test_every_file_is_well_formed_xml() -> None:
    files = list(FS.rglob("*.xml"))
    assert len(files) >= 3
    for f in files:
        ET.parse(f)


def test_agent_leg_gets_the_survey_and_the_call_data() -> None:
    acts = actions("ct_tracking_number")
    exports = [d for a, d in acts if a == "export"]
    # nolocal: only the agent leg is transferred (else the caller gets the survey when the
    # agent hangs up first), and everything is exported before the bridge.
    assert exports and all(d.startswith("nolocal:") for d in exports)
    assert [a for a, _ in acts].index("bridge") > max(
        i for i, (a, _) in enumerate(acts) if a == "export"
    )
    tab = next(d for d in exports if "transfer_after_bridge=" in d).split("=", 1)[1]
    ext, dialplan, context = tab.split(":")  # the context is explicit
    assert (ext, dialplan, context) == ("agent_survey", "XML", "default")
    exported = {d.split(":", 1)[1].split("=", 1)[0] for d in exports}
    assert {"ct_tracking_number", "ct_caller", "ct_agent"} <= exported
    # ... and those are the variables the IVR reads.
    info = call_info(
        {
            "Unique-ID": "u",
            "variable_ct_tracking_number": "+493012345001",
            "variable_ct_caller": "+491701234567",
            "variable_ct_agent": "1001",
        }
    )
    assert (info.tracking_number, info.caller, info.agent) == (
        "+493012345001",
        "+491701234567",
        "1001",
    )


def test_socket_is_async_full_on_the_ivr_port() -> None:
    acts = actions("agent_survey")
    socket = next(d for a, d in acts if a == "socket")
    hosts, *flags = socket.split()
    assert {f.lower() for f in flags} == {"async", "full"}
    ivr_port = split_host_port(Settings.model_fields["ivr_listen"].default)[1]
    for host in hosts.split("|"):
        assert host.rsplit(":", 1)[1] == str(ivr_port)
    assert [a for a, _ in acts][-1] == "hangup"  # IVR done or unreachable: release the leg
    tts = dict(d.split("=", 1) for a, d in acts if a == "set")
    assert tts["tts_engine"] and tts["tts_voice"]  # for the say: fallback


def test_http_cache_does_not_grab_http_schemes() -> None:
    root = ET.parse(FS / "autoload_configs" / "http_cache.conf.xml").getroot()
    params = {p.get("name"): p.get("value") for p in root.iter("param")}
    assert params["enable-file-formats"] == "false"
    assert re.fullmatch(r"\d+", params["download-timeout"] or "")
