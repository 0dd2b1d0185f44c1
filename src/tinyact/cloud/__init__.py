"""The cloud service: receives clip latents from edge devices, classifies, stores, sends back, exports and
shows them (FastAPI + SQLAlchemy + Alembic; MQTT optional).

Modules, in the order a clip passes through them:

* :mod:`~tinyact.cloud.app` – HTTP routes, auth dependencies, error bodies (``create_app``)
* :mod:`~tinyact.cloud.service` – validation, classification and send-back shared by HTTP and MQTT
* :mod:`~tinyact.cloud.batcher` – micro-batching of concurrent requests
* :mod:`~tinyact.cloud.registry` – the active classifier and hot swaps
* :mod:`~tinyact.cloud.store` / :mod:`~tinyact.cloud.db` – idempotent writes, schema, Alembic migrations
* :mod:`~tinyact.cloud.mqtt` – results out / clips in over MQTT
* :mod:`~tinyact.cloud.analytics`, :mod:`~tinyact.cloud.export` – dashboard queries and streamed exports
* :mod:`~tinyact.cloud.devices` – device keys; :mod:`~tinyact.cloud.server` – running it (``serve_in_background``)
* :mod:`~tinyact.cloud.testing` – a classifier on generated latents and clip messages, for tests and benchmarks
"""
