"""The HTTP routes, one router per area; :func:`tinyact.cloud.app.create_app` includes them in this order.

=========================  =================  ===============================================================
route                      who                what
=========================  =================  ===============================================================
POST /v1/clips             device key         classify and store clips; results in the response (``clips``)
GET  /v1/results           device key, admin  a device's results after a cursor (``results``)
GET  /v1/model             any token          the active classifier (``results``)
POST /v1/admin/model       admin              load another classifier folder, no downtime (``admin``)
GET  /v1/admin/models      admin              every model version the service has loaded
GET/POST /v1/admin/devices admin              list / add devices; DELETE …/{name} revokes; POST …/{name}/rotate
GET  /v1/export            admin              stream predictions as CSV, JSONL or Parquet
GET  /v1/dashboard/*       viewer, admin      the dashboard's data (``dashboard``)
GET  /                     anyone             the dashboard page (its data needs a token)
GET  /healthz /readyz      anyone             alive / ready (``health``)
GET  /metrics              anyone             Prometheus metrics (expose on an internal network only)
=========================  =================  ===============================================================
"""

from __future__ import annotations

from tinyact.cloud.api import admin, clips, dashboard, health, results

ROUTERS = (clips.router, results.router, admin.router, dashboard.router, health.router)
