"""The catalog: an index of the store (groups, sources, recovery points, file versions) plus jobs and alerts.

Public surface: `open_catalog(url)` and the `Catalog` handle (engine.py), the tables (models.py), groups
(groups.py), points and the version index (points.py), rebuild from the store (rebuild.py).
"""

from appliance.catalog.engine import Catalog, open_catalog

__all__ = ["Catalog", "open_catalog"]
