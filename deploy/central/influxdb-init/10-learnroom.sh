#!/bin/bash
# Run once by the influxdb:2.7 image after its initial setup (docker-entrypoint-initdb.d):
# the 2-year rollup bucket, DBRP mappings so Grafana's InfluxQL finds both buckets, and the
# 5-minute downsampling task. The same steps by hand: influxdb2-setup.md.
set -euo pipefail
org="${DOCKER_INFLUXDB_INIT_ORG}"
influx bucket create --org "$org" --name learnroom_5m --retention 730d
raw_id="$(influx bucket list --org "$org" --name learnroom --hide-headers | cut -f1)"
rollup_id="$(influx bucket list --org "$org" --name learnroom_5m --hide-headers | cut -f1)"
influx v1 dbrp create --org "$org" --db learnroom --rp raw --bucket-id "$raw_id" --default
influx v1 dbrp create --org "$org" --db learnroom --rp rollup_5m --bucket-id "$rollup_id"
influx task create --org "$org" --file /etc/learnroom/downsample-5m.flux
