"""The CLI's verb groups, one module each (registered on the root group by appliance/cli.py)."""
