"""The cloud service: receives clip latents from edge devices, classifies, stores, sends back, exports and
shows them (FastAPI + SQLAlchemy + Alembic; MQTT optional).

Modules, in the order a clip passes through them:

* :mod:`~tinyact.cloud.app` – ``create_app``: routers, middleware, error answers; :mod:`~tinyact.cloud.api` –
  the routes, one module per area (clips, results, admin, dashboard, health)
* :mod:`~tinyact.cloud.middleware` – body-size limit, gzip bodies, request metrics;
  :mod:`~tinyact.cloud.auth` – tokens and device keys to a caller; :mod:`~tinyact.cloud.errors` – refusals
* :mod:`~tinyact.cloud.service` – classification, storage and send-back shared by HTTP and MQTT
* :mod:`~tinyact.cloud.decode` – checks of a request's clips and its latents as one batch
* :mod:`~tinyact.cloud.batcher` – micro-batching of concurrent requests
* :mod:`~tinyact.cloud.registry` – the active classifier and hot swaps
* :mod:`~tinyact.cloud.store`, :mod:`~tinyact.cloud.idempotency` / :mod:`~tinyact.cloud.db` – idempotent
  writes, ``Idempotency-Key`` answers, schema, Alembic migrations
* :mod:`~tinyact.cloud.mqtt` – results out / clips in over MQTT; :mod:`~tinyact.cloud.broker` – broker logins
* :mod:`~tinyact.cloud.analytics`, :mod:`~tinyact.cloud.export` – dashboard queries and streamed exports
* :mod:`~tinyact.cloud.devices` – device keys; :mod:`~tinyact.cloud.server` – running it (``serve_in_background``)

The messages and the stored prediction's schema are in :mod:`tinyact.wire`, shared with the edge. Test and
benchmark helpers (a classifier on generated latents, clip messages) are in ``benchmarks/cloud_fixtures.py``.
"""
