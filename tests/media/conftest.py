"""Fixtures for the media tests: a simulated library (`tapeline-vtl init`, reached in-process through `local://`, the
same SCSI target a served library is) registered in a real catalog through `MediaService`."""

from __future__ import annotations

from pathlib import Path

import pytest

from appliance.catalog.engine import open_catalog
from appliance.config import load
from appliance.media.service import MediaService
from media_harness import CAPACITY
from simulators.vtl.cli import main as vtl_main


@pytest.fixture
def library_dir(tmp_path) -> Path:
    directory = tmp_path / "vtl"
    assert vtl_main(["init", str(directory), "--slots", "8", "--drives", "2", "--capacity", str(CAPACITY)]) == 0
    return directory


@pytest.fixture
def media(tmp_path, library_dir):
    """A MediaService over a fresh SQLite catalog, with the library registered as `vtl`."""
    settings = load(data_dir=tmp_path / "data")
    catalog = open_catalog(settings.catalog_url)
    service = MediaService(catalog, settings, wait_alert=0.2)
    service.add_library("vtl", f"local://{library_dir}/changer",
                        [f"local://{library_dir}/drive0", f"local://{library_dir}/drive1"])
    yield service
    service.close()
    catalog.close()
