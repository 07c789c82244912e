// learnroom: 5-minute rollup for InfluxDB 2.x, the counterpart of the 1.x continuous queries
// that `learnroom influx-setup` creates (gateway/central/tools/influx_setup.py, rollup_queries()).
//
// UNTESTED HERE: no InfluxDB 2.x server was available when this was written. Check it with
// `influx query --file` over a short range before `influx task create --file` (see
// influxdb2-setup.md in this directory).
//
// Same measurement, field and tag names as the raw bucket, timestamps at the START of each
// window (as InfluxQL's GROUP BY time() labels them), so dashboards switch between the two
// by retention policy alone. Numbers: mean (locker_event count: sum); booleans and strings:
// last, because mean() refuses them.
//
// The field lists mirror gateway/central/mapping.py; tests/test_influx_setup.py fails when
// they drift apart.

option task = {name: "learnroom-downsample-5m", every: 5m, offset: 30s}

src = "learnroom"
dst = "learnroom_5m"

// Recompute the last hour on every run (like RESAMPLE FOR 1h), so points a gateway's
// outbox delivers late still reach the rollup; rewriting a window overwrites it.
lookback = 1h

mean_fields = [
    "bitrate_mbps",
    "capacity",
    "co2_ppm",
    "cpu_pct",
    "cpu_temp_c",
    "disk_free_mb",
    "dns_ms",
    "humidity_pct",
    "illuminance_lux",
    "jitter_ms",
    "latency_ms",
    "loss_pct",
    "mem_rss_mb",
    "noise_dba",
    "outbox_depth",
    "outbox_dropped",
    "people",
    "rssi_dbm",
    "seats_free",
    "seats_total",
    "temperature_c",
    "uptime_s",
]
last_fields = [
    "bssid",
    "charging",
    "firing",
    "message",
    "occupied",
    "ok",
    "online",
    "open",
    "portal_ok",
    "present",
    "version",
]
sum_fields = ["count"]

raw = from(bucket: src)
    |> range(start: -lookback)

raw
    |> filter(fn: (r) => contains(value: r._field, set: mean_fields))
    |> aggregateWindow(every: 5m, fn: mean, timeSrc: "_start", createEmpty: false)
    |> to(bucket: dst)

raw
    |> filter(fn: (r) => contains(value: r._field, set: last_fields))
    |> aggregateWindow(every: 5m, fn: last, timeSrc: "_start", createEmpty: false)
    |> to(bucket: dst)

raw
    |> filter(fn: (r) => r._measurement == "locker_event" and contains(value: r._field, set: sum_fields))
    |> aggregateWindow(every: 5m, fn: sum, timeSrc: "_start", createEmpty: false)
    |> to(bucket: dst)
