"""A second locustfile for tests: records the plugin's custom events and writes what it saw to
``$LETRADE_EVENT_PROBE`` (JSON) at quit — counts per event and the field names of one sample."""
import json
import os

import locust

from letrade_perf.harness.plugin import CUSTOM_EVENTS, define_events

define_events(locust.events)
seen: dict = {name: {"count": 0, "fields": []} for name in CUSTOM_EVENTS}
outcomes: dict = {}


def _listener(name):
    def listen(**kwargs):
        entry = seen[name]
        entry["count"] += 1
        entry["fields"] = sorted(kwargs)
        if name == "letrade_order":
            outcomes[kwargs["outcome"]] = outcomes.get(kwargs["outcome"], 0) + 1
    return listen


for _name in CUSTOM_EVENTS:
    getattr(locust.events, _name).add_listener(_listener(_name))


@locust.events.quitting.add_listener
def _write(**_kw):
    path = os.environ.get("LETRADE_EVENT_PROBE")
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump({"events": seen, "order_outcomes": outcomes}, fh)
