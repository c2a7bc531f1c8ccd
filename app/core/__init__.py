"""Settings, the runtime object graph, logs, metrics, migrations, quotas, readiness and
the blob sweep: what every part of the service shares."""
