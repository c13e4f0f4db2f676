"""Protection of sources: file trees (files.py)."""
