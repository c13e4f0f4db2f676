"""The HTTP API on a Unix socket: the app (app.py), serving it (server.py) and its client (client.py)."""
