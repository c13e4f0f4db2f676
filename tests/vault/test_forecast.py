"""The rotation forecast over a real catalog (SQLite and PostgreSQL): a group backed up to tape every night into a
pool that rotates through a vault, as the operator reads the forecast."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func
from sqlmodel import select

from appliance.catalog.engine import open_catalog
from appliance.catalog.groups import SourceInput, create_group
from appliance.catalog.media import add_library, create_pool
from appliance.catalog.models import Cartridge, CartridgeMove, MediaSet, Pool, TapeSet
from appliance.catalog.tape_sets import set_policy
from appliance.catalog.vaults import create_vault
from appliance.errors import UsageError
from appliance.vault.forecast import forecast

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)


def nightly_site(url: str, cartridges: int, retention_days: int = 7):
    """A group with a full backup to tape every night at 01:00, into pool `nightly` (a media set per backup,
    `retention_days` of retention, vault `iron`), with `cartridges` scratch cartridges in the library; one earlier
    set of 40 GB already written."""
    cat = open_catalog(url)
    lib = add_library(cat, "vtl", "local:///vtl/changer", [])
    iron = create_vault(cat, "iron")
    pool = create_pool(cat, "nightly", lib.id, retention_days * 86400, "always", None, None, True, 0)
    group = create_group(cat, "files", [SourceInput("/srv/files", (), ())], 900, (), 14 * 86400)
    set_policy(cat, group.id, pool.id, "01:00", None)
    with cat.session() as s:
        row = s.get(Pool, pool.id)
        row.vault_id = iron.id
        s.add(row)
        for n in range(cartridges):
            s.add(Cartridge(barcode=f"N{n:05d}L9", library_id=lib.id, pool_id=pool.id, state="scratch",
                            location_kind="slot", location_number=n + 1, label_uuid=f"label-{n}"))
        ms = MediaSet(uuid="earlier", pool_id=pool.id, created=NOW - 3 * DAY, closed=NOW - 3 * DAY,
                      retention_seconds=retention_days * 86400, expires=NOW + (retention_days - 3) * DAY)
        s.add(ms)
        s.flush()
        s.add(TapeSet(uuid="earlier-set", media_set_id=ms.id, group_id=group.id, group_name="files", kind="full",
                      created=NOW - 3 * DAY, state="ok", bytes=40 * 10**9))
    return cat


@pytest.fixture
def site(catalog_url):
    cat = nightly_site(catalog_url, 20)
    yield cat
    cat.close()


def test_each_nights_set_goes_offsite_and_comes_back_when_it_expires(site):
    f = forecast(site, NOW, weeks=3)
    assert len(f.days) == 21 and f.days[0][0] == NOW.astimezone().date().isoformat()
    nightly = [pools[0] for _, pools in f.days]
    assert [d.written for d in nightly] == [1] * 21  # every night at 01:00, from the day after today
    first = nightly[0].sent
    # closed and verified: out the same day, with the catalog backup the export writes first (`always`: a media set
    # and a cartridge of its own each day)
    assert len(first) == 2 and all(len(d.sent) == 2 for d in nightly)
    back = [i for i, d in enumerate(nightly) if first[0] in d.back]
    assert back[0] == 0 + 7 + 2  # 7 days' retention, then a day with the vault's courier and one more
    assert f.scratch_out == {"nightly": None}
    # every cartridge is counted once: in the library with data, scratch, or offsite
    assert all(d.in_library + d.scratch + d.offsite == 20 for d in nightly)
    assert max(d.offsite for d in nightly) == 18


def test_a_cartridge_recalled_for_its_sampled_check_comes_back_and_leaves_again(site):
    with site.session() as s:
        pool = s.exec(select(Pool)).one()
        pool.check_sample, pool.check_every_seconds = 1, 7 * 86400
        s.add(pool)
    f = forecast(site, NOW, weeks=2)
    nightly = [pools[0] for _, pools in f.days]
    # sent on day 0, in the vault on day 1 and recalled that evening for the first round: back on day 3, read,
    # and out again with that day's export, long before its data expires
    checked = nightly[0].sent[0]
    assert checked in nightly[3].back and checked in nightly[3].sent
    assert all(checked not in d.back for d in nightly[4:9])
    # the next round is a week after the first (day 8): with day 1's two expired ones on day 10 comes one of day 2's
    assert len(nightly[10].back) == 3 and set(nightly[2].sent) & set(nightly[10].back)


def test_too_few_cartridges_say_when_scratch_runs_out(catalog_url):
    cat = nightly_site(catalog_url, 5)
    try:
        f = forecast(cat, NOW, weeks=2)
    finally:
        cat.close()
    out = f.scratch_out["nightly"]
    # two cartridges a night (the set and the export's catalog backup): the fifth is the third night's set, and its
    # catalog backup finds none
    assert out == (NOW + 2 * DAY).astimezone().date().isoformat()
    day = dict(f.days)[out][0]
    assert day.short == 1 and day.scratch == 0


def test_the_forecast_changes_nothing_in_the_catalog(site):
    def state():
        with site.reader() as s:
            return (s.exec(select(func.count()).select_from(CartridgeMove)).one(),
                    s.exec(select(func.count()).select_from(TapeSet)).one(),
                    sorted(s.exec(select(Cartridge.barcode, Cartridge.state, Cartridge.rotation)).all()))
    before = state()
    forecast(site, NOW, weeks=2)
    assert state() == before


def test_weeks_out_of_range_say_the_range(site):
    with pytest.raises(UsageError, match="out of range") as err:
        forecast(site, NOW, weeks=0)
    assert "--weeks from 1 to 104" in err.value.fix


def test_the_forecast_job_counts_the_simulated_days_as_its_progress(site):
    """A year of a big site takes longer than a client waits for one answer: the forecast runs as a job whose
    progress a `--wait` bar shows, and whose result is the forecast."""
    from appliance.ops.jobs import JobEngine
    from appliance.vault.mailslot_jobs import FORECAST, VaultTasks
    engine = JobEngine(site, VaultTasks(None, None, None, None).bodies())
    engine.start()
    try:
        job_id, _ = engine.submit(FORECAST, None, None, {"weeks": 2})
        job = engine.wait(job_id, 120)
    finally:
        engine.stop()
    assert job.state == "completed"
    assert (job.progress_done, job.progress_total) == (14, 14)
    days = job.result["forecast"]["days"]
    assert len(days) == 14 and [d["pools"][0]["written"] for d in days] == [1] * 14
    assert job.result["summary"] == "2 weeks forecast: scratch lasts in every pool"


def test_the_forecast_through_the_command_warns_when_scratch_runs_out(tmp_path):
    from tests.appliance.daemon_harness import make_daemon
    url = f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    nightly_site(url, 5).close()
    d = make_daemon(tmp_path, url).start()
    try:
        proc = d.run("vault", "forecast", "--weeks", "2", check=3)
        bad = d.run("vault", "forecast", "--weeks", "200", check=2)
    finally:
        assert d.stop() == 0
    assert "pool nightly: scratch runs out on" in proc.stdout and "DAY" in proc.stdout
    assert "tapeline media label BARCODE... --pool nightly" in proc.stderr
    assert "200" in bad.stderr


def test_cartridges_written_in_earlier_lives_are_reused_whole(catalog_url):
    """`bytes_written` counts a cartridge's whole life: a scratch cartridge that once held a full set is empty."""
    cat = nightly_site(catalog_url, 14)  # a week's two a night (the set and the catalog backup)
    try:
        with cat.session() as s:
            for cart in s.exec(select(Cartridge)).all():
                cart.bytes_written = 40 * 10**12
                s.add(cart)
        f = forecast(cat, NOW, weeks=1)
    finally:
        cat.close()
    assert [pools[0].written for _, pools in f.days] == [1] * 7 and f.scratch_out == {"nightly": None}
