"""Small-appends benchmark (not a test): issue 12's 1,000 appends of 10 rows.

    .venv/bin/python bench/small_appends.py [--appends 1000] [--repetitions 21]

Starts the real server (local backend, temp data dir, keep_versions=10, keep_days=0,
compact_after_files=16), appends sequentially, ingests the same rows as one file
into a second dataset, then times count(*) and a group-by on both (medians,
alternating) as automatic compaction left the table and again after
POST /admin/compact; prints the append time and the ratios, then the checks of
tests/e2e/test_small_appends.py (which runs 300 appends), one line each.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support import appends  # noqa: E402  # after the path tweak
from tests.support.servers import LakehouseServer  # noqa: E402
from tests.support.settings import make_settings  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--appends", type=int, default=1000)
    parser.add_argument("--repetitions", type=int, default=21)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="small-appends-") as tmp:
        settings = appends.configure(make_settings("local", Path(tmp), None), timed=True)
        server = LakehouseServer(settings, Path(tmp)).start()
        try:
            report = appends.run(server.url, args.appends, repetitions=args.repetitions)
        finally:
            server.stop()
    print(report.summary())
    checks = [
        ("rows and history", lambda: appends.check_rows_and_history(report)),
        ("compaction", lambda: appends.check_compaction(report)),
        ("within 2x after compact", lambda: appends.check_within_2x(report, report.compacted)),
        ("within 2x as left", lambda: appends.check_within_2x(report, report.left)),
    ]
    failed = 0
    for name, check in checks:
        try:
            check()
        except AssertionError as exc:
            failed += 1
            print(f"FAILED {name}: {str(exc).splitlines()[0]}")
        else:
            print(f"ok     {name}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
