"""Write HAProxy's configuration for Quorum's app processes from scripts/haproxy.cfg.template.

    python scripts/haproxy_config.py --port 8501 --out var/cluster/haproxy.cfg 127.0.0.1:8502 ...

Each app process becomes server `q1`, `q2`, ... in both backends; in the pages backend the
sticky cookie holds that name.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from string import Template

TEMPLATE = Path(__file__).with_name("haproxy.cfg.template")
COOKIE = "QUORUM_REPLICA"
ADDRESS = re.compile(r"^[A-Za-z0-9.\-]+:[0-9]{1,5}$")


def render(address: str, port: int, replicas: list[str], cookie: str = COOKIE) -> str:
    if not replicas:
        raise SystemExit("Name at least one app process as HOST:PORT.")
    bad = [r for r in replicas if not ADDRESS.match(r)]
    if bad:
        raise SystemExit(f"App processes are named HOST:PORT, not {bad[0]!r}.")
    names = [f"q{i + 1}" for i in range(len(replicas))]
    pages = "\n".join(
        f"    server {n} {r} cookie {n}" for n, r in zip(names, replicas, strict=True)
    )
    api = "\n".join(f"    server {n} {r}" for n, r in zip(names, replicas, strict=True))
    return Template(TEMPLATE.read_text()).substitute(
        address=address, port=port, cookie=cookie, pages_servers=pages, api_servers=api
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--address", default="127.0.0.1", help="where HAProxy listens")
    parser.add_argument("--port", type=int, required=True, help="HAProxy's port")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("replicas", nargs="+", help="HOST:PORT of each app process")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(args.address, args.port, args.replicas))


if __name__ == "__main__":
    main()
