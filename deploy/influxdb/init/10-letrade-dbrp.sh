#!/bin/bash
# InfluxDB 2.x first-start hook (the official image runs /docker-entrypoint-initdb.d/*.sh once,
# right after DOCKER_INFLUXDB_INIT_MODE=setup created the org, bucket and admin token, with the
# influx CLI already configured for that temporary instance and DOCKER_INFLUXDB_INIT_BUCKET_ID set).
#
# Maps InfluxQL database "letrade_perf", retention policy "autogen" onto the bucket, so Grafana's
# InfluxQL datasource (and any 1.x client) can query what the harness writes with the v2 API.
set -euo pipefail

db="${LETRADE_INFLUXQL_DB:-${DOCKER_INFLUXDB_INIT_BUCKET}}"
if influx v1 dbrp list --db "${db}" --hide-headers 2>/dev/null | grep -q .; then
  echo "letrade: DBRP mapping for database ${db} already exists"
  exit 0
fi
influx v1 dbrp create \
  --org "${DOCKER_INFLUXDB_INIT_ORG}" \
  --db "${db}" \
  --rp autogen \
  --bucket-id "${DOCKER_INFLUXDB_INIT_BUCKET_ID}" \
  --default
echo "letrade: InfluxQL database ${db} (rp autogen) -> bucket ${DOCKER_INFLUXDB_INIT_BUCKET}"
