"""The offsite rotation reports and the forecast for a big site (issue 9's figures: every report under 1 s, a 52-week
forecast under 5 s), each timed as the whole user command against a running daemon.

    .venv/bin/python bench/vault_reports.py [--runs 3] [--work DIR]

The site, made straight in a SQLite catalog before the daemon starts: 10,000 cartridges in one library; two vaults;
pools `daily` (a media set a day, 30 days' retention, vault iron), `weekly` (91 days, iron) and `monthly` (a year,
vault dr-site), each with 1,000 cartridges, `local` (no vault) with 2,000 and 5,000 blank ones; 10 groups with tape
schedules (5 nightly into daily, 3 on Saturdays into weekly, 2 on Saturdays into monthly), and two years of their
history: every set written, every media set closed, sent out in a case, received by the vault, recalled when it
expired and put back into the library (~28,000 recorded moves, ~4,900 tape sets), some read-back checks (one of 25 failed), and a
few cartridges out of place (found in a slot while the catalog has them in the vault; lost by the courier).

Then `tapeline report NAME` for each rotation report (text, as printed), `vault-inventory --format im`,
`restore-needs` of a nightly group now and of a monthly one 200 days ago, and `tapeline vault forecast` over
1 and 52 weeks, each run `--runs` times after one warm-up run; the figure is the median wall time of the
whole command (process start included), printed with the CPU seconds of the client and of the daemon meanwhile
(the machine's other work slows the wall time, not those) and the load average before and after. There is no peer
to run here (Bareos' media_vault needs a Bareos director and PostgreSQL catalog, NetBackup Vault and DRM are
commercial): the reference printed beside each figure is the goal, and `tapeline report list` from the same run, the
cost of any command at all against this daemon.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import deque
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import insert

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from appliance.catalog.engine import open_catalog  # noqa: E402
from appliance.catalog.models import (Cartridge, CartridgeMove, Library, MediaCase, MediaSet, Pool,  # noqa: E402
                                      ProtectionGroup, TapePolicy, TapeSet, TapeSetPart, Vault)

TAPELINE = str(Path(sys.executable).with_name("tapeline"))
DAY = timedelta(days=1)
TB = 10**12
REPORTS = ("pick-list-library", "pick-list-vault", "distribution", "vault-inventory", "discrepancies",
           "media-status")


class Site:
    """Rows for a bulk insert, with ids given here."""

    def __init__(self, now: datetime):
        self.now = now
        self.rows: dict = {m: [] for m in (Library, Vault, MediaCase, Pool, ProtectionGroup, TapePolicy, MediaSet,
                                           Cartridge, TapeSet, TapeSetPart, CartridgeMove)}
        self.carts: dict[int, dict] = {}
        self.ids = {m: 0 for m in self.rows}

    def add(self, model, **values) -> int:
        self.ids[model] += 1
        values.setdefault("id", self.ids[model])
        self.rows[model].append(values)
        return values["id"]

    def move(self, cart: dict, when: datetime, to_rotation: str, to_location: str, kind: str, vault_id=None):
        if when > self.now:
            return False
        self.add(CartridgeMove, cartridge_id=cart["id"], time=when, operator="tapeline", from_location=cart["_where"],
                 to_location=to_location, from_rotation=cart["rotation"], to_rotation=to_rotation, reason="bench",
                 job_id=None)
        cart.update(rotation=to_rotation, _where=to_location, location_kind=kind, vault_id=vault_id)
        if kind not in ("slot", "drive", "mailslot"):
            cart["location_number"] = None
        else:
            cart["location_number"] = cart["_slot"]
        return True


def make_site(url: str, now: datetime) -> dict:
    site = Site(now)
    rng = random.Random(9)
    lib = site.add(Library, name="vtl", changer_url="local:///nonexistent/changer", drive_urls=[], created=now)
    iron = site.add(Vault, name="iron", contact="Iron Mountain", created=now)
    dr = site.add(Vault, name="dr-site", contact="the other office", created=now)
    names = {iron: "iron", dr: "dr-site"}
    pools = {}
    for name, vault, days, allocation in (("daily", iron, 30, "daily"), ("weekly", iron, 91, "weekly"),
                                          ("monthly", dr, 365, "monthly"), ("local", None, 14, "continue")):
        pools[name] = (site.add(Pool, name=name, library_id=lib, retention_seconds=days * 86400,
                                allocation=allocation, verify=True, reuse_delay_seconds=0, created=now,
                                vault_id=vault, offsite_copies=1, recall="expired", gfs={}), vault, days)
    slot = 0
    free: dict[str, deque] = {}
    for name, count in (("daily", 1000), ("weekly", 1000), ("monthly", 1000), ("local", 2000), (None, 5000)):
        queue = free.setdefault(name, deque())
        for _ in range(count):
            slot += 1
            barcode = f"{(name or 'x')[0].upper()}{slot:05d}L8"
            cart = {"id": slot, "barcode": barcode, "library_id": lib, "pool_id": pools[name][0] if name else None,
                    "state": "scratch" if name else "blank", "location_kind": "slot", "location_number": slot,
                    "rotation": "mountable", "first_seen": now - 800 * DAY, "label_uuid": str(uuid.uuid4()),
                    "bytes_written": 0, "next_file": 1, "mounts": 0, "_slot": slot, "_where": f"slot {slot}",
                    "media_set_id": None, "sequence": None, "expires": None, "vault_id": None, "case_id": None,
                    "last_used": None, "last_check": None, "last_check_result": None}
            site.carts[slot] = cart
            queue.append(cart)
    groups = {}
    for g in range(10):
        pool = "daily" if g < 5 else "weekly" if g < 8 else "monthly"
        gid = site.add(ProtectionGroup, name=f"g{g:02d}", sync_seconds=900, point_times="", keep_seconds=14 * 86400,
                       paused=False, created=now - 800 * DAY)
        groups[f"g{g:02d}"] = (gid, pool)
        site.add(TapePolicy, group_id=gid, pool_id=pools[pool][0],
                 full="Sun 01:00" if pool == "daily" else "Sat 03:00" if pool == "weekly" else "Sat 05:00",
                 incremental="01:00" if pool == "daily" else None)
    start = (now - 730 * DAY).replace(hour=0, minute=0, second=0, microsecond=0)
    for pool_name, (pool_id, vault, retention) in pools.items():
        if pool_name == "local":
            continue
        mine = [(name, gid) for name, (gid, p) in groups.items() if p == pool_name]
        day, periods = start, []
        while day < now:
            if pool_name == "daily":
                nxt = day + DAY
            elif pool_name == "weekly":
                nxt = day + (7 - day.weekday()) * DAY
            else:
                nxt = (day.replace(day=1) + 32 * DAY).replace(day=1)
            periods.append((day, nxt))
            day = nxt
        last_base: dict[str, int] = {}
        for created, closes in periods:
            writes = []
            t = created
            while t < closes:
                if pool_name == "daily" or t.weekday() == 5:
                    writes += [(t + timedelta(hours=1 + i), name, gid) for i, (name, gid) in enumerate(mine)]
                t += DAY
            writes = [w for w in writes if w[0] <= now]
            if not writes:
                continue
            closed = closes if closes <= now else None
            expires = closed + retention * DAY if closed else None
            ms = site.add(MediaSet, uuid=str(uuid.uuid4()), pool_id=pool_id, created=created, closed=closed,
                          retention_seconds=retention * 86400, expires=expires, last_written=writes[-1][0],
                          tier=None)
            used = []
            for seq, (when, group, gid) in enumerate(writes):
                queue = free[pool_name]
                cart = queue.popleft()
                assert cart.get("_free", start) <= when, f"pool {pool_name} ran out of cartridges in the bench site"
                kind = "full" if pool_name != "daily" or when.weekday() == 6 or group not in last_base else \
                    "incremental"
                ts = site.add(TapeSet, uuid=str(uuid.uuid4()), media_set_id=ms, group_id=gid, group_name=group,
                              kind=kind, base_set_id=last_base.get(group) if kind == "incremental" else None,
                              created=when, state="ok" if expires is None or expires > now else "expired",
                              verified=when + timedelta(hours=1), files=100_000, bytes=12 * TB, expires=expires,
                              point_id=None, snapshot_id=None)
                last_base[group] = ts
                site.add(TapeSetPart, set_id=ts, part=1, cartridge_id=cart["id"], tape_file=2, index_file=3,
                         first_block=0, blocks=45_000_000)
                cart.update(media_set_id=ms, sequence=seq, state="full" if closed else "allocated",
                            bytes_written=12 * TB, expires=expires, last_used=when, next_file=4,
                            mounts=cart["mounts"] + 1)
                used.append(cart)
            if closed is None:
                continue
            case = site.add(MediaCase, number=f"{pool_name}-{closed:%Y%m%d}", vault_id=vault, created=closed)
            for cart in used:
                cart["case_id"] = case
                site.move(cart, closed + timedelta(hours=9), "courier", "in transit", "transit", vault)
                site.move(cart, closed + timedelta(hours=30), "vault", f"vault {names[vault]}", "vault", vault)
                if site.move(cart, expires, "vaultretrieve", f"vault {names[vault]}", "vault", vault) and \
                        site.move(cart, expires + DAY, "courierretrieve", "in transit", "transit", vault) and \
                        site.move(cart, expires + 2 * DAY, "onsiteretrieve", "on site", "outside") and \
                        site.move(cart, expires + 2 * DAY + timedelta(hours=1), "mountable", f"slot {cart['_slot']}",
                                  "slot"):
                    cart.update(state="scratch", media_set_id=None, sequence=None, expires=None, case_id=None,
                                _free=expires + 2 * DAY)
                    free[pool_name].append(cart)
    vaulted = [c for c in site.carts.values() if c["rotation"] == "vault"]
    for cart in rng.sample(vaulted, 2):  # seen in a slot by an inventory though the catalog has it in the vault
        site.add(CartridgeMove, cartridge_id=cart["id"], time=now - 2 * DAY, operator="tapeline",
                 from_location=cart["_where"], to_location=f"slot {cart['_slot']}", from_rotation="vault",
                 to_rotation="vault", reason="inventory of library vtl: expected elsewhere", job_id=None)
        cart.update(location_kind="slot", location_number=cart["_slot"])
    for cart in rng.sample([c for c in vaulted if c["location_kind"] == "vault"], 3):  # lost by the courier
        site.add(CartridgeMove, cartridge_id=cart["id"], time=now - 6 * DAY, operator="ann",
                 from_location=cart["_where"], to_location="in transit", from_rotation="vault",
                 to_rotation="courierretrieve", reason="bench", job_id=None)
        cart.update(rotation="courierretrieve", location_kind="transit")
    for i, cart in enumerate(rng.sample(vaulted, 50)):  # read-back checks, as vault/checks.py records them
        cart.update(last_check=now - (i + 1) * DAY, last_check_result="ok" if i % 25 else "failed")
    site.rows[Cartridge] = [{k: v for k, v in c.items() if not k.startswith("_")} for c in site.carts.values()]
    cat = open_catalog(url)
    with cat.engine.begin() as conn:
        for model in (Library, Vault, MediaCase, Pool, ProtectionGroup, TapePolicy, MediaSet, Cartridge, TapeSet,
                      TapeSetPart, CartridgeMove):
            rows = site.rows[model]
            for i in range(0, len(rows), 5000):
                conn.execute(insert(model.__table__), rows[i:i + 5000])
    cat.close()
    return {m.__tablename__: len(r) for m, r in site.rows.items()}


def cpu_seconds(pid: int) -> float:
    """CPU seconds (user and system) a running process has used so far (Linux: /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(data: Path, args: list[str], daemon: int, ok=(0,)) -> tuple[float, float, float]:
    """(wall seconds of the whole command, CPU seconds of the client, CPU seconds of the daemon meanwhile); wall
    infinity when it failed (its error is printed). Other work on the machine slows the wall time, not the CPU
    times."""
    client_before, daemon_before = resource.getrusage(resource.RUSAGE_CHILDREN), cpu_seconds(daemon)
    began = time.perf_counter()
    proc = subprocess.run([TAPELINE, "--data", str(data), *args], capture_output=True, text=True,
                          env={**os.environ, "TAPELINE_DATA": ""})
    took = time.perf_counter() - began
    client_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client = (client_after.ru_utime + client_after.ru_stime) - (client_before.ru_utime + client_before.ru_stime)
    served = cpu_seconds(daemon) - daemon_before
    if proc.returncode not in ok:
        print(f"  tapeline {' '.join(args)} exited {proc.returncode} after {took:.1f} s: {proc.stderr.strip()}")
        return float("inf"), client, served
    return took, client, served


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--work", type=Path, help="a directory to work in (default: a temporary one)")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="vault-reports-"))
    data = work / "tapeline"
    data.mkdir(parents=True)
    url = f"sqlite:///{work / 'catalog.sqlite'}"
    now = datetime.now(timezone.utc)
    began = time.perf_counter()
    counts = make_site(url, now)
    print(f"site made in {time.perf_counter() - began:.1f} s: " + ", ".join(f"{n} {t}" for t, n in counts.items()))
    config = work / "tapeline.toml"
    config.write_text(f'data_dir = "{data}"\n[api]\nsocket = "{data}/run/tapeline.sock"\n'
                      'group = "tapeline-bench-none"\n[defaults]\npoints = []\n[log]\nlevel = "warning"\n'
                      f'[catalog]\nurl = "{url}"\n')
    log = open(work / "daemon.log", "ab")
    daemon = subprocess.Popen([TAPELINE, "serve", "--config", str(config)], stdout=log, stderr=log,
                              env={**os.environ, "TAPELINE_DATA": ""})
    try:
        deadline = time.monotonic() + 60
        while subprocess.run([TAPELINE, "--data", str(data), "report", "list"], capture_output=True,
                             env={**os.environ, "TAPELINE_DATA": ""}).returncode != 0:
            if daemon.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the daemon did not start: see {work / 'daemon.log'}")
            time.sleep(0.2)
        commands = [(f"report {name}", ["report", name], 1.0, (0,)) for name in REPORTS]
        commands += [("report vault-inventory --format im", ["report", "vault-inventory", "--format", "im"], 1.0,
                      (0,)),
                     ("report restore-needs g00 (a week's chain)", ["report", "restore-needs", "g00"], 1.0, (0,)),
                     ("report restore-needs g08 --at '200d ago'", ["report", "restore-needs", "g08", "--at",
                                                                   "200d ago"], 1.0, (0,)),
                     ("vault forecast --weeks 1", ["vault", "forecast", "--weeks", "1"], None, (0, 3)),
                     ("vault forecast --weeks 52", ["vault", "forecast", "--weeks", "52"], 5.0, (0, 3)),
                     ("report list (any command's floor)", ["report", "list"], None, (0,))]
        print("load average (1, 5, 15 min) before: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
        print(f"{'command':45} {'median s':>9} {'best s':>8} {'client cpu':>11} {'daemon cpu':>11} {'goal s':>7}")
        for label, argv, goal, ok in commands:
            runs = [timed(data, argv, daemon.pid, ok)]  # warm-up: the daemon's first query of each kind
            if runs[0][0] != float("inf"):
                runs = [timed(data, argv, daemon.pid, ok) for _ in range(args.runs)]
            wall = statistics.median(r[0] for r in runs)
            verdict = "" if goal is None else "  ok" if wall < goal else "  OVER"
            print(f"{label:45} {wall:9.3f} {min(r[0] for r in runs):8.3f} "
                  f"{statistics.median(r[1] for r in runs):11.3f} {statistics.median(r[2] for r in runs):11.3f} "
                  f"{'-' if goal is None else f'{goal:.1f}':>7}{verdict}")
        print("load average (1, 5, 15 min) after: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    finally:
        daemon.terminate()
        try:
            daemon.wait(30)
        except subprocess.TimeoutExpired:  # still busy with a forecast the client gave up on
            daemon.kill()
            daemon.wait(30)


if __name__ == "__main__":
    main()
