"""Hostile input through a real broker: the ingest keeps running and every valid message lands."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.central.validate import Accepted, check
from gateway.launch.broker import Mosquitto
from gateway.launch.influxd import Influxd
from tests.central.util import (
    Publisher,
    central_config,
    occupancy_payload,
    occupancy_times,
    running_ingest,
    wait_for,
)

PREFIX = "learnroom/v1"
#: Topic levels that reach a subscriber: no wildcards, and none of what Mosquitto disconnects
#: a publisher for (control characters, surrogates, noncharacters and unassigned code points).
level = st.text(
    st.characters(blacklist_characters="+#/", blacklist_categories=("Cc", "Cs", "Cn")),
    max_size=20,
)
topics = st.one_of(
    st.lists(level, min_size=1, max_size=6).map(lambda ls: "/".join([PREFIX, *ls])),
    st.sampled_from(["occupancy", "lockers", "alerts", "health"]).map(
        lambda k: f"{PREFIX}/s/a/{k}"
    ),
)
valid = json.loads(occupancy_payload("s", "a", 0)[1])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=10,
)
payloads = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    # a real envelope with one field replaced by anything
    st.tuples(st.sampled_from(sorted(valid)), json_values).map(
        lambda kv: json.dumps(valid | {kv[0]: kv[1]}).encode()
    ),
    st.tuples(st.sampled_from(sorted(valid["data"])), json_values).map(
        lambda kv: json.dumps(valid | {"data": valid["data"] | {kv[0]: kv[1]}}).encode()
    ),
)
hostile = st.lists(st.tuples(topics, payloads), min_size=1, max_size=15)


def test_arbitrary_topics_and_payloads_never_stop_the_ingest(
    mosquitto: Mosquitto, influxd: Influxd, tmp_path: Path
):
    seqs = itertools.count()
    good_seqs: list[int] = []
    pub = Publisher(mosquitto.port)
    with running_ingest(central_config(mosquitto, influxd, tmp_path)) as ingest:

        @settings(
            max_examples=40,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        )
        @given(hostile)
        def run(messages: list[tuple[str, bytes]]) -> None:
            before = ingest.stats.received
            accepted = ingest.stats.accepted
            sent_valid = 0
            for topic, payload in messages:
                pub.publish(topic, payload)
                if isinstance(check(topic, payload), Accepted):
                    sent_valid += 1  # a hostile message that happens to be valid
                seq = next(seqs)
                good_seqs.append(seq)
                pub.publish(*occupancy_payload("s", "good", seq))
            expected = before + 2 * len(messages)
            wait_for(lambda: ingest.stats.received >= expected, 20, "every message arrives")
            assert ingest.stats.received == expected
            assert ingest.stats.accepted - accepted == len(messages) + sent_valid

        run()
        assert ingest.wait_idle(20)
        assert ingest.stats.writer_up
    pub.close()
    assert occupancy_times(influxd)["good"] == sorted(good_seqs)
