"""The receive path's shortcuts must say exactly what the plain code says.

``mapping.to_lines`` writes the lines of the common kinds without building ``Row`` values (the
ingest calls it once per message); for any values it must equal the rows' own lines, which
another test holds equal to influxdb-client's ``Point``.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from gateway.central.mapping import to_lines, to_points
from gateway.models import (
    EnvironmentData,
    HealthData,
    LockerData,
    OccupancyData,
    SlotState,
    StatusData,
    WifiData,
    make_envelope,
)
from tests.central.test_mapping import _KNOWN_DATA, TS

_text = st.text(max_size=12)
_id = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,8}", fullmatch=True)
_float = st.none() | st.floats(0, 100)
_DATA = _KNOWN_DATA | st.one_of(
    st.builds(
        WifiData,
        ssid=st.none() | _text,
        bssid=st.none() | _text,
        rssi_dbm=st.none() | st.floats(-120, 0),
        latency_ms=_float,
        portal_ok=st.none() | st.booleans(),
        ok=st.booleans(),
    ),
    st.builds(
        LockerData,
        door_open=st.booleans(),
        slots=st.lists(
            st.builds(
                SlotState, slot=_id, present=st.booleans(), charging=st.none() | st.booleans()
            ),
            max_size=5,
        ),
    ),
    st.builds(EnvironmentData, co2_ppm=_float, temperature_c=st.none() | st.floats(-40, 80)),
    st.builds(OccupancyData, people=st.none() | st.integers(0, 2**63 - 1), occupied=st.booleans()),
    st.builds(
        HealthData,
        uptime_s=st.floats(0, 1e15),
        outbox_depth=st.integers(0, 10**6),
        outbox_dropped=st.integers(0, 10),
    ),
    st.builds(StatusData, online=st.booleans(), version=st.none() | _text),
)


@given(_DATA, st.none() | _text.filter(bool), st.integers(0, 2**40))
def test_the_lines_of_any_reading_are_its_rows_lines(data, sub, seq):
    env = make_envelope("site-a", "room-1", data, TS, seq)
    assert to_lines(env, sub) == [row.line() for row in to_points(env, sub)]
