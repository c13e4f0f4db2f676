"""The protect engine for file trees: the functions and values the daemon calls (the contract of issue 3).

sync, check, restore, prune and versions are plain functions over an open Store; they never print, report through
`progress`, and stop cleanly when `cancel` is set. See docs/store-format.md for what they write.
"""

from appliance.protect.check import check
from appliance.protect.prune import prune
from appliance.protect.restore import restore
from appliance.protect.sync import sync
from appliance.protect.versions import versions
from appliance.protect.types import (NO_PROGRESS, Alert, Change, ChangeList, CheckResult, GroupSpec, Progress,
                                     PruneResult, RestoreResult, SourceSpec, SyncResult, SyncStats, Version)

__all__ = ["NO_PROGRESS", "Alert", "Change", "ChangeList", "CheckResult", "GroupSpec", "Progress", "PruneResult",
           "RestoreResult", "SourceSpec", "SyncResult", "SyncStats", "Version", "check", "prune",
           "restore", "sync", "versions"]
