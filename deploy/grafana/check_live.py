#!/usr/bin/env python3
"""Drives traffic through a running Switchboard (the demo tenant) and asks Prometheus, which
scrapes its metrics listener, every query of the Grafana dashboard: each panel's query must
answer series. Standard library only.

usage: check_live.py SWITCHBOARD_URL PROMETHEUS_URL DASHBOARD_JSON
"""
import json
import sys
import time
import urllib.parse
import urllib.request


def call(url, body=None, token=None):
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"null")


def traffic(base, visitors):
    """Visitors ask FAQ questions, something the knowledge base does not cover, and for a
    person (a handoff: the demo agent is offline, so the chat waits in the queue)."""
    texts = ["怎么退货", "how do I reset my password", "你们的营业时间是什么时候",
             "my parcel has not arrived", "转人工"]
    sent = 0
    for visitor in range(visitors):
        session = call(f"{base}/v1/web/session", {"tenant": "demo"})
        for n, text in enumerate(texts[visitor % 2:]):
            call(f"{base}/v1/web/messages",
                 {"client_msg_id": f"dash-{visitor}-{n}", "text": text},
                 token=session["token"])
            sent += 1
            time.sleep(0.2)
    return sent


def query(prometheus, expr):
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    answer = call(url)
    if answer.get("status") != "success":
        raise RuntimeError(f"{expr}: {answer}")
    return answer["data"]["result"]


def main():
    base, prometheus, dashboard = sys.argv[1:4]
    sent = traffic(base, 12)
    print(f"sent {sent} customer messages through {base}")
    # Two scrapes after the last message, so every rate() has two samples with it.
    time.sleep(12)
    panels = json.load(open(dashboard))["panels"]
    missing = []
    for panel in panels:
        for target in panel.get("targets", []):
            series = query(prometheus, target["expr"])
            values = ", ".join(
                "{}={}".format(
                    ",".join(f"{k}:{v}" for k, v in s["metric"].items()) or "all",
                    s["value"][1])
                for s in series[:4])
            print(f"{panel['title']:<34} {len(series):>3} series  {values[:110]}")
            if not series:
                missing.append(f"{panel['title']}: {target['expr']}")
    if missing:
        print("queries without data:\n  " + "\n  ".join(missing))
        sys.exit(1)
    print(f"every one of the {len(panels)} panels' queries answered live series")


if __name__ == "__main__":
    main()
