"""The edge device: cameras read round-robin, clips encoded to latents in one batch per round, latents sent
to the cloud through a durable outbox, results kept in a local database.

Modules: ``config`` (EdgeConfig), ``sources`` (FileCamera), ``streams`` (StreamCamera), ``encoder`` (encoder
backends), ``schema`` / ``outbox`` / ``store`` (the SQLite database: tables and migrations, the outbox, results),
``transports`` (HTTP, MQTT), ``capture`` / ``delivery`` / ``hold`` / ``agent`` (EdgeAgent); see docs/EDGE.md.
"""
