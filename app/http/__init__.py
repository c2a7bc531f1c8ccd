"""Web plumbing shared by the routes: dependencies, problem documents, the OpenAPI spec,
API docs, the web UI mount, upload reading, the body-size guard and response middleware."""
