"""The edge device: cameras read round-robin, clips encoded to latents in one batch per round, latents sent
to the cloud through a durable outbox, results kept in a local database.

Modules: ``config`` (EdgeConfig), ``sources`` (FileCamera, StreamCamera), ``encoder`` (encoder backends),
``store`` (EdgeStore: SQLite captures, results, outbox), ``transports`` (HTTP, MQTT), ``agent`` (EdgeAgent).
"""
