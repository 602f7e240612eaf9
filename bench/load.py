"""Run the locust scenario (``bench/locustfile.py``) against gunicorn + PostgreSQL on a seeded
demo in a fresh schema, and print one JSON line: requests, failures, error rate, requests/s,
p50 and p95 (all requests together), per-endpoint lines after it.

    python bench/load.py [--users 50] [--minutes 10] [--enterprises 300]
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.services.demo import BANK_NAMES
from bench.run import BIN, DEMO_PASSWORD, ROOT, bench_schema, flask, gunicorn

BANK = BANK_NAMES[0]  # the demo bank: its prospects share with it


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--enterprises", type=int, default=300)
    args = parser.parse_args()
    with bench_schema() as env, tempfile.TemporaryDirectory(prefix="xyd-load-") as tmp:
        flask(env, "db", "upgrade")
        flask(env, "seed-demo", "--enterprises", str(args.enterprises))
        issued = flask(
            env, "bank-clients", "create", "--bank", BANK, "--name", "load-test",
            "--scope", "profiles:read", "--scope", "applications:write", "--scope", "needs:write",
        )  # fmt: skip
        client_id = re.search(r"client_id\s+(\S+)", issued)
        secret = re.search(r"client_secret\s+(\S+)", issued)
        assert client_id and secret, issued
        with gunicorn(env) as base:
            prefix = str(Path(tmp) / "load")
            subprocess.run(  # noqa: S603
                [str(BIN / "locust"), "-f", str(ROOT / "bench" / "locustfile.py"), "--headless",
                 "-u", str(args.users), "-r", "10", "-t", f"{int(args.minutes * 60)}s",
                 "--host", base, "--csv", prefix, "--only-summary"],
                env={**env, "XINYIDAI_DEMO_PASSWORD": DEMO_PASSWORD,
                     "XINYIDAI_DEMO_ENTERPRISES": str(args.enterprises),
                     "XINYIDAI_API_CLIENT_ID": client_id.group(1),
                     "XINYIDAI_API_CLIENT_SECRET": secret.group(1)},
                cwd=ROOT, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            with open(prefix + "_stats.csv", newline="") as fh:
                rows = list(csv.DictReader(fh))
    total = next(r for r in rows if r["Name"] == "Aggregated")
    requests, failures = int(total["Request Count"]), int(total["Failure Count"])
    print(json.dumps({
        "name": "load", "users": args.users, "minutes": args.minutes,
        "enterprises": args.enterprises, "requests": requests, "failures": failures,
        "error_rate": round(failures / requests, 5) if requests else None,
        "rps": round(float(total["Requests/s"]), 1), "p50_ms": float(total["50%"]),
        "p95_ms": float(total["95%"]),
    }), flush=True)  # fmt: skip
    for row in rows:
        if row["Name"] != "Aggregated":
            print(json.dumps({"endpoint": f"{row['Type']} {row['Name']}",
                              "requests": int(row["Request Count"]),
                              "failures": int(row["Failure Count"]),
                              "p50_ms": float(row["50%"]), "p95_ms": float(row["95%"])},
                             ensure_ascii=False))  # fmt: skip


if __name__ == "__main__":
    main()
