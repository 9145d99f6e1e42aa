"""``convtrack api``: serve the REST API with uvicorn (listen address from ``CT_API_LISTEN``).

``convtrack api --hash-key TENANT [--viewer]`` prints a new random key and the line to put into
the production keys file (``CT_API_KEYS_FILE``) instead; only the hash goes into the file.
"""

from __future__ import annotations

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--listen", help="HOST:PORT to serve on (CT_API_LISTEN)")
    parser.add_argument(
        "--workers", type=int, default=1, help="uvicorn worker processes (default 1)"
    )
    parser.add_argument(
        "--hash-key",
        metavar="TENANT",
        help="print a new API key for TENANT and its line for CT_API_KEYS_FILE, then exit",
    )
    parser.add_argument("--viewer", action="store_true", help="with --hash-key: read-only key")


def run(args: argparse.Namespace) -> int:
    from shared.settings import Settings, get_settings, split_host_port

    if args.hash_key:
        return _print_key(args.hash_key, args.viewer)

    import uvicorn

    from shared.logs import configure_logging

    base = get_settings()
    settings = (
        Settings.model_validate({**base.model_dump(), "api_listen": args.listen})
        if args.listen
        else base
    )
    configure_logging(settings.log_format, settings.log_level)
    host, port = split_host_port(settings.api_listen)
    if args.workers > 1:
        # Each worker process builds its own app (and NATS/ClickHouse connections).
        uvicorn.run(
            "services.api.cli:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=args.workers,
            log_config=None,
            proxy_headers=True,
        )
        return 0
    from services.api.app import create_app

    uvicorn.run(create_app(settings), host=host, port=port, log_config=None, proxy_headers=True)
    return 0


def app_from_environment() -> object:
    from services.api.app import create_app
    from shared.settings import get_settings

    return create_app(get_settings())


def _print_key(tenant: str, viewer: bool) -> int:
    from services.api.auth import hash_key, new_key
    from shared.ids import TENANT_RE

    if not TENANT_RE.fullmatch(tenant):
        print(f"not a valid tenant id: {tenant!r}")
        return 2
    key = new_key()
    line = f"{tenant}:{hash_key(key)}" + (":viewer" if viewer else "")
    print(f"key (give to the client, shown once): {key}")
    print(f"line for CT_API_KEYS_FILE:            {line}")
    return 0
