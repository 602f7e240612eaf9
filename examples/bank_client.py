"""A bank's loan system talking to the Xinyidai Open API: fetch the enterprises that
authorized the bank, read one profile, and post a decision on an application.

    XYD_CLIENT_ID=... XYD_CLIENT_SECRET=... python examples/bank_client.py
    (XYD_URL defaults to http://127.0.0.1:5000)
"""

from __future__ import annotations

import datetime as dt
import os
import uuid

import httpx

BASE = os.environ.get("XYD_URL", "http://127.0.0.1:5000") + "/api/v1"


def token(http: httpx.Client) -> str:
    response = http.post(
        f"{BASE}/oauth/token",
        data={"grant_type": "client_credentials", "scope": "profiles:read applications:write"},
        auth=(os.environ["XYD_CLIENT_ID"], os.environ["XYD_CLIENT_SECRET"]),
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


def main() -> None:
    with httpx.Client(timeout=10) as http:
        http.headers["Authorization"] = f"Bearer {token(http)}"
        profiles = http.get(f"{BASE}/profiles", params={"per_page": 20}).json()
        for item in profiles["items"]:
            e = item["enterprise"]
            print(e["uscc"], e["name"], "fits products", item["matching_product_ids"])
        if profiles["items"]:
            first = profiles["items"][0]["enterprise"]["id"]
            profile = http.get(f"{BASE}/profiles/{first}").json()  # audited, counted
            print("grade", (profile["profile"] or {}).get("grade"))
        waiting = http.get(f"{BASE}/applications", params={"status": "submitted"}).json()
        for app in waiting["items"][:1]:
            decision = {
                "decision": "offer",
                "amount": app["amount"],  # Decimal amounts travel as strings
                "rate": "4.35",
                "term_months": app["term_months"],
                "fee": "0.00",
                "valid_until": (dt.date.today() + dt.timedelta(days=14)).isoformat(),
            }
            response = http.post(
                f"{BASE}/applications/{app['id']}/decision",
                json=decision,
                headers={"Idempotency-Key": str(uuid.uuid4())},  # safe to retry with the same key
            )
            print(response.status_code, response.json().get("status") or response.json())


if __name__ == "__main__":
    main()
