"""What the keyed, anchored audit trail costs: appending an event, verifying the trail and
writing a checkpoint, against the plain SHA-256 chain it replaced, in the same run.

    PYTHONPATH=. .venv/bin/python benchmarks/audit_chain.py [--events 20000] [--repeat 3]

Baselines: `legacy` hashes each event with plain SHA-256 (the old scheme, same canonical
bytes); `keyed` is the HMAC-SHA256 Quorum now writes. Verify compares the full verifier (MACs,
links, checkpoint digests, signatures) with a bare walk that recomputes SHA-256 per event.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core import audit, audit_anchor, config, migrate  # noqa: E402
from core.audit_format import keyed_hash, legacy_hash  # noqa: E402
from core.auth import SYSTEM  # noqa: E402
from core.db import Database  # noqa: E402


def timed(function, repeat: int) -> list[float]:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def line(name: str, times: list[float], per: int) -> str:
    return (
        f"{name:<42} min {min(times) * 1e6 / per:8.1f} us  median "
        f"{statistics.median(times) * 1e6 / per:8.1f} us per event"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="quorum-audit-bench-"))
    os.environ["QUORUM_AUDIT_DIR"] = str(root / "audit")
    os.environ["QUORUM_SCHEDULER"] = "off"
    config.reset_settings()
    url = f"sqlite:///{root / 'bench.db'}"
    migrate.upgrade(url)
    db = Database(url)
    settings = replace(config.get_settings(), audit_checkpoint_store=str(root / "checkpoints"))

    batch = 500
    start = time.perf_counter()
    for first in range(0, args.events, batch):
        with db.write() as session:
            for i in range(first, min(first + batch, args.events)):
                audit.record(
                    session,
                    SYSTEM,
                    "bench.event",
                    object_type="bench",
                    summary=f"event {i}",
                    details={"i": i, "note": "benchmark"},
                )
    append = time.perf_counter() - start
    print(
        f"appended {args.events} events in {append:.2f} s ({append * 1e6 / args.events:.0f} us each, batches of {batch})"
    )

    with db.read() as session:
        fields = [audit.event_fields(e) for e in audit.iter_events(session)]
    key = b"k" * 32
    legacy = timed(lambda: [legacy_hash(f) for f in fields], args.repeat)
    keyed = timed(lambda: [keyed_hash(key, f) for f in fields], args.repeat)
    print(line("hash: legacy SHA-256 (baseline)", legacy, len(fields)))
    print(line("hash: keyed HMAC-SHA256", keyed, len(fields)))
    print(f"ratio keyed / legacy (min): {min(keyed) / min(legacy):.2f}x")

    def bare_walk() -> None:
        with db.read() as session:
            prev = audit.GENESIS_HASH
            for event in audit.iter_events(session):
                assert event.prev_hash == prev
                legacy_hash(audit.event_fields(event))
                prev = event.hash

    def full_verify() -> None:
        with db.read() as session:
            assert audit_anchor.verify(session, settings).intact

    made = timed(lambda: audit_anchor.checkpoint(db, settings, force=True), 1)
    print(f"first checkpoint over {args.events} pending events: {made[0]:.2f} s")
    bare = timed(bare_walk, args.repeat)
    full = timed(full_verify, args.repeat)
    print(line("verify: bare SHA-256 walk (baseline)", bare, args.events))
    print(line("verify: MACs + links + checkpoints", full, args.events))
    print(f"ratio full verify / bare walk (min): {min(full) / min(bare):.2f}x")
    db.dispose()


if __name__ == "__main__":
    main()
