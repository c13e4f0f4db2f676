"""Snapshots of Recovery (the calendar, a point's tree, the restore dialog) and Management (the library drawn, the
cartridges), with the daemon's answers fixed as in test_snapshots.py (its `Recorded`, extended with the calls these
areas make, in the API's shapes). The flows against a real daemon are in test_recovery.py and test_management.py."""

from __future__ import annotations

from test_snapshots import NOW, SIZE, Recorded, at, console, settle, utc  # noqa: F401 (utc: the fixed zone)

T0 = int(NOW.timestamp() * 1e9)


def point(pid, hms, day=2, kind="sync", files=1204, size=73_400_320):
    return {"id": pid, "snapshot_id": f"snap-{pid}", "group": "finance", "kind": kind, "time": at(hms, day),
            "state": "ok", "files": files, "bytes": size}


POINTS = [point(30, "08:00:00", 1, "point"), point(31, "12:00:00", 1, "point"), point(32, "18:00:00", 1, "point"),
          point(40, "08:00:00", 2, "point"), point(41, "10:20:00")]
SETS = [{"id": 3, "uuid": "set-3", "group": "finance", "point": 32, "snapshot_id": "snap-32", "kind": "full",
         "pool": "weekly", "media_set": "ms-1", "created": at("22:00:00", 1), "state": "ok", "verified": None,
         "files": 1204, "bytes": 73_400_320, "expires": None, "base_set": None,
         "cartridges": [{"barcode": "FIN001L8", "part": 1, "tape_file": 1, "index_file": 2},
                        {"barcode": "OFF001L8", "part": 2, "tape_file": 1, "index_file": 2}]}]


def cart(barcode, state, where, number, pool="weekly", written=0):
    kind = where if where in ("slot", "drive", "mailslot") else "vault"
    place = f"{where.replace('mailslot', 'mail slot')} {number}" if kind != "vault" else "vault Iron Mountain"
    return {"barcode": barcode, "state": state, "library": "vtl", "pool": pool, "location": kind,
            "location_number": number, "where": place, "bytes_written": written, "expires": None}


MEDIA = [cart("FIN001L8", "full", "slot", 1, written=80 << 30), cart("FIN002L8", "append", "drive", 0,
                                                                       written=12 << 30),
         cart("FIN003L8", "scratch", "slot", 3), cart("CLN001L1", "cleaning", "slot", 24, pool=None),
         cart("NEW001L8", "blank", "mailslot", 1, pool=None), cart("OFF001L8", "full", "vault", None,
                                                                     written=790 << 30)]
ENTRIES = {None: [{"name": "/srv/finance", "path": "/srv/finance", "kind": "dir", "size": 4096, "mtime_ns": T0},
                  {"name": "/srv/ledger", "path": "/srv/ledger", "kind": "dir", "size": 4096, "mtime_ns": T0}],
           "/srv/finance": [{"name": "2026", "path": "/srv/finance/2026", "kind": "dir", "size": 4096, "mtime_ns": T0},
                            {"name": "budget.ods", "path": "/srv/finance/budget.ods", "kind": "file",
                             "size": 48_213, "mtime_ns": T0 - 3600 * 10**9},
                            {"name": "current", "path": "/srv/finance/current", "kind": "symlink", "size": 4,
                             "mtime_ns": T0}]}


def version(first, last, size, current=False):
    return {"group": "finance", "source": "/srv/finance", "path": "/srv/finance/budget.ods", "kind": "file",
            "size": size, "mtime_ns": T0 - 7200 * 10**9, "first_point": first, "last_point": last,
            "points": 1, "current": current}


class RecordedMedia(Recorded):
    def points(self, name):
        return POINTS

    def tape_sets(self, group=None):
        return SETS

    def media(self, pool=None, state=None):
        return MEDIA

    def cartridge(self, barcode):
        return next(c for c in MEDIA if c["barcode"] == barcode)

    def tree(self, group, path=None, point=None):
        return {"group": group, "point": POINTS[-1], "path": path, "entries": ENTRIES[path]}

    def versions(self, path):
        return [version(POINTS[0], POINTS[2], 40_010), version(POINTS[3], POINTS[4], 48_213, current=True)]

    def libraries(self):
        return [{"name": "vtl", "changer_url": "local:///var/lib/tapeline/vtl/changer", "drive_urls": [],
                 "created": at("07:00:00", 1), "last_inventory": at("10:00:00"),
                 "drives": [{"library": "vtl", "number": 0, "url": "local:///vtl/drive0", "enabled": True,
                             "cleanings": 2, "last_cleaned": at("09:00:00", 1), "failures_in_row": 0},
                            {"library": "vtl", "number": 1, "url": "local:///vtl/drive1", "enabled": True,
                             "cleanings": 0, "last_cleaned": None, "failures_in_row": 0}],
                 "cartridges": {"full": 1, "append": 1, "scratch": 1, "cleaning": 1, "blank": 1},
                 "outside": ["OFF001L8"]}]

    def drives(self):
        return self.libraries()[0]["drives"]

    def report(self, name, fmt="text", days=7, group=None, at=None):
        return {"name": name, "format": fmt, "content": f"{name}: nothing to move today"}

    def pools(self):
        return [{"name": "weekly", "library": "vtl", "retention_seconds": 28 * 86400, "verify": True,
                 "cartridges": {"full": 2, "append": 1, "scratch": 1}}]


async def recovery(pilot) -> None:
    await pilot.press("f3")
    await settle(pilot)


def test_recovery_calendar(snap_compare):
    assert snap_compare(console(RecordedMedia()), terminal_size=SIZE, run_before=recovery)


def test_recovery_browse(snap_compare):
    async def browse(pilot):
        await recovery(pilot)
        pilot.app.screen.query_one("#days").focus()
        await pilot.press("enter", "enter")  # the newest day, its newest point: the sources
        await settle(pilot)
        await pilot.press("enter")  # into /srv/finance
        await settle(pilot)
    assert snap_compare(console(RecordedMedia()), terminal_size=SIZE, run_before=browse)


def test_restore_dialog(snap_compare):
    async def dialog(pilot):
        await recovery(pilot)
        pilot.app.screen.show_versions("/srv/finance/budget.ods")
        await settle(pilot)
        await pilot.press("r")
        await settle(pilot)
    assert snap_compare(console(RecordedMedia()), terminal_size=SIZE, run_before=dialog)


def test_management(snap_compare):
    async def management(pilot):
        await pilot.press("f5")
        await settle(pilot)
    assert snap_compare(console(RecordedMedia()), terminal_size=SIZE, run_before=management)


def test_a_tape_sets_restore_names_its_cartridges_and_where_each_one_is():
    from pilot import run, text_of, until
    from tui.widgets.restore import RestoreDialog

    async def scenario():
        app = console(RecordedMedia())
        async with app.run_test(size=SIZE) as pilot:
            await recovery(pilot)
            app.screen.query_one("#days").focus()
            await pilot.press("down", "enter")  # 2026-03-01: its tape set comes first (22:00)
            await pilot.press("enter")
            dialog = await until(pilot, lambda: isinstance(app.screen, RestoreDialog) and app.screen, "the dialog")
            assert [text_of(n) for n in dialog.query(".restore-need")] == [
                "• FIN001L8 (tape set 3, full): slot 1 of library vtl",
                "• OFF001L8 (tape set 3, full): vault Iron Mountain: not in the library, recall or fetch it first"]
            assert "tape set 3" in text_of(dialog.query_one("#restore-title"))
    run(scenario)
