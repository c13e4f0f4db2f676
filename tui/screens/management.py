"""Management (F5): each library drawn as it is (drives, mail slots, slots and the cartridge in each), the cartridges
by pool, state and place with a filter, the drives, the pools; inventory, label, erase, clean, load and unload; a new
pool and the vault it rotates to (tui/widgets/pool_form.py).

The drawing comes from the catalog's record of the last inventory (`/v1/libraries/{name}` and `/v1/media`): slots are
drawn up to the highest one a cartridge was seen in. Erasing, and labelling a cartridge that holds data, ask first in
`Confirm`, naming what the catalog says the cartridge holds. Load puts the cartridge under the cursor into a drive
(picked, or any free one) and leaves it there; unload puts the one in the drive (or the cartridge) under the cursor
back in its slot: neither loses anything, so neither asks. The Vault tab shows the two pick lists (the reports
`pick-list-library`: what to eject today and from where; `pick-list-vault`: what comes back) and starts the guided
export and import through the mail slots (tui/widgets/mailslot_guide.py).
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import DataTable, Input, Label, OptionList, Static, TabbedContent, TabPane
from textual.widgets.option_list import Option

from appliance.text import format_duration, size
from tui.format import clock
from tui.messages import JobsRefreshed
from tui.screens.area import AreaScreen
from tui.tables import cursor_key
from tui.widgets.confirm import Confirm
from tui.widgets.filtered_table import FilteredTable, FilterInput
from tui.widgets.mailslot_guide import MailSlotGuide
from tui.widgets.pool_form import PoolForm, PoolPlan, create

# The keys that act on what one tab shows, shown (and run) on that tab only: with every key always, the footer no
# longer fits 140 columns. The others (inventory, export, import) act on the library or the vault from any tab.
TAB_ACTIONS = {"label": ("cartridges",), "erase": ("cartridges",), "load": ("cartridges",), "filter": ("cartridges",),
               "unload": ("cartridges", "drives-tab"), "clean": ("drives-tab",), "new_pool": ("pools-tab",)}
NO_POOL = ("No pool yet: n creates one (the cartridges it may use, how long their sets are kept, the vault they "
           "rotate to).")
MEDIA_JOBS = ("label", "erase", "inventory", "clean", "load", "unload", "tape-backup", "tape-restore", "verify",
              "vault-export", "vault-import")
CARTRIDGE_COLUMNS = [("Barcode", 10), ("Pool", 12), ("State", 10), ("Where", 16), ("Library", 10), ("Written", 10),
                     ("Expires", 16)]
VAULT_HINT = ("e: export what is ready through the mail slots (guided, step by step); m: import what comes back "
              "through the mail slots of the library on the left")
PICK_LISTS = ("pick-list-library", "pick-list-vault")
CELL = 12  # characters per element in the drawing


def cartridge_row(c: dict, now) -> tuple:
    return (c["barcode"], c.get("pool") or "-", c["state"], c.get("where") or c["location"], c.get("library") or "-",
            size(c["bytes_written"]) if c.get("bytes_written") else "-", clock(c.get("expires"), now))


def pool_row(p: dict) -> tuple:
    keep = "forever" if p.get("retention_seconds") is None else format_duration(p["retention_seconds"])
    return (p["name"], p["library"], keep, ", ".join(f"{n} {s}" for s, n in p["cartridges"].items()) or "none",
            "yes" if p.get("verify") else "no")


def draw_library(lib: dict, carts: list[dict], width: int) -> str:
    """The library as text: its drives, mail slots and slots, each with the cartridge in it (· when empty)."""
    at = {(c["location"], c["location_number"]): c["barcode"] for c in carts
          if c.get("library") == lib["name"] and c["location"] in ("slot", "drive", "mailslot")}
    per_line = max(1, (width - 2) // CELL)

    def row(kind: str, numbers: list[int]) -> list[str]:
        cells = [f"{n:>3} {at.get((kind, n), '·'):<{CELL - 4}}" for n in numbers]
        return [" ".join(cells[i:i + per_line]) for i in range(0, len(cells), per_line)] or ["(none seen)"]

    drives = [d["number"] for d in lib["drives"]]
    mail = sorted(n for k, n in at if k == "mailslot")
    slots = max((n for k, n in at if k == "slot"), default=0)
    states = ", ".join(f"{n} {s}" for s, n in sorted(lib["cartridges"].items())) or "no cartridge"
    lines = [f"{lib['name']}: {states}; {len(lib['outside'])} outside",
             f"last inventory {lib['last_inventory'] or 'never'}", "", "Drives"]
    lines += row("drive", drives)
    lines += ["", "Mail slots"] + row("mailslot", mail)
    lines += ["", f"Slots (1-{slots}, the highest a cartridge was seen in)"] + row("slot", list(range(1, slots + 1)))
    return "\n".join(lines)


class PoolPicker(ModalScreen[str | None]):
    """Which pool a cartridge is labelled for."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, barcode: str, pools: list[dict]):
        super().__init__()
        self.barcode = barcode
        self.pools = pools

    def compose(self) -> ComposeResult:
        with Vertical(id="pool-picker"):
            yield Label(f"Label {self.barcode} for which pool? (Enter picks, Escape cancels)")
            yield OptionList(*[Option(f"{p['name']} (library {p['library']})", id=p["name"]) for p in self.pools],
                             id="pool-options")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(event.option.id)


class DrivePicker(ModalScreen[int | None]):
    """Which drive a cartridge is loaded into: any free one (-1), or a number."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, barcode: str, drives: list[dict]):
        super().__init__()
        self.barcode = barcode
        self.drives = drives

    def compose(self) -> ComposeResult:
        with Vertical(id="pool-picker"):
            yield Label(f"Load {self.barcode} into which drive? (Enter picks, Escape cancels)")
            yield OptionList(Option("any free drive", id="-1"),
                             *[Option(f"drive {d['number']}" + ("" if d["enabled"] else " (out of service)"),
                                      id=str(d["number"])) for d in self.drives], id="drive-options")

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(int(event.option.id))


class ManagementScreen(AreaScreen):
    AREA = "Management"
    BINDINGS = [
        Binding("i", "inventory", "Inventory", tooltip="Read the library's barcodes now"),
        Binding("l", "label", "Label", tooltip="Label the cartridge under the cursor for a pool"),
        Binding("x", "erase", "Erase", tooltip="Erase the cartridge under the cursor"),
        Binding("c", "clean", "Clean", tooltip="Clean the drive under the cursor (Drives tab)"),
        Binding("o", "load", "Load", tooltip="Load the cartridge under the cursor into a drive"),
        Binding("u", "unload", "Unload", tooltip="Put the cartridge (or the drive's cartridge) under the cursor back "
                "in its slot"),
        Binding("slash", "filter", "Filter", tooltip="Filter the cartridges by any words"),
        Binding("e", "export", "Export", tooltip="Eject what goes to the vault today through the mail slots, "
                "step by step"),
        Binding("m", "import", "Import", tooltip="Take what came back from the vault in through the mail "
                "slots, step by step"),
        Binding("n", "new_pool", "New pool", tooltip="Create a media pool (and the vault its cartridges rotate to)"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.libraries: list[dict] = []
        self.library: str | None = None
        self.media: list[dict] = []
        self.pools: list[dict] = []
        self.drives: list[dict] = []
        self._seen_jobs: dict[int, str] = {}

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="management"):
            with Vertical(id="library-pane", classes="pane"):
                yield Label("Libraries", classes="pane-title")
                yield OptionList(id="libs")
                with VerticalScroll(id="library-scroll"):
                    yield Static("No library yet: add one with `tapeline library add NAME --changer URL --drive URL`.",
                                 id="library-map", markup=False)
            with TabbedContent(id="management-tabs", initial="cartridges"):
                with TabPane("Cartridges", id="cartridges"):
                    yield FilterInput(placeholder="filter: any words of barcode, pool, state, place (e.g. scratch "
                                      "lib1)", id="media-filter")
                    yield FilteredTable(CARTRIDGE_COLUMNS, id="media")
                    yield Static(id="media-count", classes="empty")
                with TabPane("Drives", id="drives-tab"):
                    yield DataTable(id="drives", cursor_type="row", zebra_stripes=True)
                with TabPane("Pools", id="pools-tab"):
                    yield DataTable(id="pools", cursor_type="row", zebra_stripes=True)
                    yield Static(NO_POOL, id="pools-empty", classes="empty", markup=False)
                with TabPane("Vault", id="vault"):
                    yield Static(VAULT_HINT, classes="empty", markup=False)
                    with VerticalScroll(id="vault-scroll"):
                        yield Static("Reading the pick lists…", id="pick-lists", markup=False)

    def on_mount(self) -> None:
        self.query_one("#drives", DataTable).add_columns("Library", "Drive", "Enabled", "Cleanings", "Last cleaned",
                                                         "Failures", "URL")
        self.query_one("#pools", DataTable).add_columns("Pool", "Library", "Retention", "Cartridges", "Verify")
        # Filtered as the value changes, within the key's own handling: the table then changes in the same frame as
        # the typed letter, not in the next one (Input.Changed reaches the screen a few message hops later).
        self.watch(self.query_one("#media-filter", Input), "value", self._filter, init=False)

    def catch_up(self) -> None:
        self.load()

    def on_jobs_refreshed(self, message: JobsRefreshed) -> None:
        """A media job that ended since the last poll changed what the cartridges are: read them again."""
        ended = False
        for job in message.jobs:
            was = self._seen_jobs.get(job["id"])
            if job["kind"] in MEDIA_JOBS and was in ("queued", "running") and job["state"] not in (
                    "queued", "running"):
                ended = True
            self._seen_jobs[job["id"]] = job["state"]
        if ended:
            self.load()

    # -- reading --------------------------------------------------------------------------------------------------

    def load(self) -> None:
        daemon = self.app.daemon

        def everything():
            return daemon.libraries(), daemon.media(), daemon.pools(), daemon.drives()
        self.call("read the libraries and cartridges", everything, done=lambda got: self.show(*got))
        if self.query_one("#management-tabs", TabbedContent).active == "vault":
            self.load_pick_lists()

    def load_pick_lists(self) -> None:
        """Read when the Vault tab is shown (not with every load: two reports the other tabs do not need)."""
        daemon = self.app.daemon

        def pick_lists():
            return [daemon.report(name, "text")["content"] for name in PICK_LISTS]
        self.call("read the pick lists", pick_lists,
                  done=lambda got: self.query_one("#pick-lists", Static).update("\n\n".join(got)))

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        self.refresh_bindings()
        if event.pane.id == "vault":
            self.load_pick_lists()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        tabs = TAB_ACTIONS.get(action)
        return tabs is None or self.query_one("#management-tabs", TabbedContent).active in tabs

    def show(self, libraries: list[dict], media: list[dict], pools: list[dict], drives: list[dict]) -> None:
        self.libraries, self.media, self.pools, self.drives = libraries, media, pools, drives
        names = [lib["name"] for lib in libraries]
        box = self.query_one("#libs", OptionList)
        if [o.id for o in box.options] != names:
            box.clear_options()
            box.add_options([Option(n, id=n) for n in names])
        if self.library not in names:
            self.library = names[0] if names else None
        if self.library:
            box.highlighted = names.index(self.library)
        self.draw()
        now = self.app.now()
        table = self.query_one("#media", FilteredTable)
        table.set_rows([cartridge_row(c, now) for c in media])
        self.count()
        drive_table = self.query_one("#drives", DataTable)
        drive_table.clear()
        for d in drives:
            drive_table.add_row(d["library"], str(d["number"]), "yes" if d["enabled"] else
                                f"no ({d.get('disabled_reason') or 'disabled'})", str(d["cleanings"]),
                                clock(d.get("last_cleaned"), now), str(d["failures_in_row"]), d["url"],
                                key=f"{d['library']}:{d['number']}")
        pool_table = self.query_one("#pools", DataTable)
        pool_table.clear()
        for p in pools:
            pool_table.add_row(*pool_row(p), key=p["name"])
        self.query_one("#pools-empty").display = not pools

    def draw(self) -> None:
        lib = next((x for x in self.libraries if x["name"] == self.library), None)
        if lib is not None:
            width = self.query_one("#library-scroll").size.width or 48
            self.query_one("#library-map", Static).update(draw_library(lib, self.media, width))

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        if event.option_list.id == "libs" and event.option.id != self.library:
            self.library = event.option.id
            self.draw()

    def _filter(self, text: str) -> None:
        self.query_one("#media", FilteredTable).filter(text)
        self.count()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "media-filter":
            self.query_one("#media", FilteredTable).focus()

    def count(self) -> None:
        table = self.query_one("#media", FilteredTable)
        note = self.query_one("#media-count", Static)
        if not table.rows:
            text = "No cartridges: put some in the library, then press i (inventory)."
        else:
            text = (f"{len(table.shown):,} of {len(table.rows):,} cartridges; l labels, x erases the one under the "
                    f"cursor")
        # Laid out again only when its height changes: a layout of the screen at each keystroke cost a frame.
        note.update(text, layout=False)
        if note.size and note.get_content_height(note.size, self.app.size, note.content_size.width) != \
                note.content_size.height:
            note.refresh(layout=True)

    def action_filter(self) -> None:
        self.query_one("#management-tabs", TabbedContent).active = "cartridges"
        self.query_one("#media-filter", Input).focus()

    # -- actions --------------------------------------------------------------------------------------------------

    def _cartridge(self) -> str | None:
        row = self.query_one("#media", FilteredTable).selected
        if row is None or self.query_one("#management-tabs", TabbedContent).active != "cartridges":
            self.notify("Pick a cartridge in the Cartridges tab first.", severity="warning")
            return None
        return row[0]

    def action_inventory(self) -> None:
        if self.library is None:
            return self.notify("No library yet: add one with `tapeline library add`.", severity="warning")
        name = self.library

        def done(answer):
            inv = answer["inventory"]
            self.notify(f"{inv['cartridges']} data cartridges; new: {', '.join(inv['new']) or 'none'}; gone: "
                        f"{', '.join(inv['outside']) or 'none'}", title=f"inventory of {name}")
            self.load()
        self.call(f"inventory of {name}", self.app.daemon.inventory, name, done=done)

    def action_new_pool(self) -> None:
        if not self.libraries:
            return self.notify("No library yet: add one with `tapeline library add`.", severity="warning")
        self.call("read the vaults", self.app.daemon.vaults,
                  done=lambda vaults: self._pool_form(PoolPlan("", self.library or ""), [v["name"] for v in vaults]))

    def _pool_form(self, plan: PoolPlan, vaults: list[str]) -> None:
        def save(asked: PoolPlan | None) -> None:
            if asked is not None:
                self.call("Create the pool", create, self.app.daemon, asked, done=self._pool_created,
                          failed=lambda: self._pool_form(asked, vaults))
        self.app.push_screen(PoolForm(plan, vaults), save)

    def _pool_created(self, note: str) -> None:
        self.done_note(note)
        self.load()

    def action_label(self) -> None:
        barcode = self._cartridge()
        if barcode is None:
            return
        if not self.pools:
            return self.notify("No pool yet: create one with n (New pool).", severity="warning")

        def picked(pool: str | None):
            if pool is None:
                return

            def known(cart: dict):
                holds = cart.get("holds") or (f"foreign data ({cart['note']})" if cart["state"] == "foreign" else None)
                if not holds:
                    return self._label(barcode, pool, False)
                self.app.push_screen(Confirm(f"Relabel {barcode} for pool {pool}?", [f"{barcode} holds {holds}"],
                                             action="Relabel"),
                                     lambda yes: yes and self._label(barcode, pool, True))
            self.call(f"read cartridge {barcode}", self.app.daemon.cartridge, barcode, done=known)
        self.app.push_screen(PoolPicker(barcode, self.pools), picked)

    def _label(self, barcode: str, pool: str, force: bool) -> None:
        self.call(f"label {barcode}", self.app.daemon.label, [barcode], pool, force,
                  done=lambda answer: self._started(answer, f"label {barcode} for pool {pool}"))

    def action_erase(self) -> None:
        barcode = self._cartridge()
        if barcode is None:
            return

        def known(cart: dict):
            losses = [f"{barcode} holds {cart['holds']}"] if cart.get("holds") else \
                [f"whatever is written on {barcode} (the catalog knows of no backup on it)"]
            losses += [f"tape set of group {s['group']} ({s['kind']}, {s['created'][:16]})"
                       for s in cart.get("sets", [])]
            self.app.push_screen(Confirm(f"Erase cartridge {barcode}?", losses, action="Erase"),
                                 lambda yes: yes and self.call(
                                     f"erase {barcode}", self.app.daemon.erase, barcode, True,
                                     done=lambda answer: self._started(answer, f"erase {barcode}")))
        self.call(f"read cartridge {barcode}", self.app.daemon.cartridge, barcode, done=known)

    def action_clean(self) -> None:
        table = self.query_one("#drives", DataTable)
        if self.query_one("#management-tabs", TabbedContent).active != "drives-tab" or not table.row_count:
            return self.notify("Pick a drive in the Drives tab first.", severity="warning")
        library, number = cursor_key(table).rsplit(":", 1)
        self.call(f"clean drive {number}", self.app.daemon.drive_action, library, int(number), "clean",
                  done=lambda answer: self._started(answer, f"clean drive {number} of {library}"))

    def action_load(self) -> None:
        barcode = self._cartridge()
        if barcode is None:
            return
        cart = next(c for c in self.media if c["barcode"] == barcode)
        drives = [d for d in self.drives if d["library"] == cart.get("library")]

        def picked(number: int | None):
            if number is not None:
                drive = None if number < 0 else number
                self.call(f"load {barcode}", self.app.daemon.load, barcode, drive,
                          done=lambda answer: self._started(answer, f"load {barcode}"))
        self.app.push_screen(DrivePicker(barcode, drives), picked)

    def action_unload(self) -> None:
        tab = self.query_one("#management-tabs", TabbedContent).active
        if tab == "drives-tab" and self.query_one("#drives", DataTable).row_count:
            table = self.query_one("#drives", DataTable)
            library, number = cursor_key(table).rsplit(":", 1)
            self.call(f"unload drive {number}", self.app.daemon.unload, None, int(number), library,
                      done=lambda answer: self._started(answer, f"unload drive {number} of {library}"))
            return
        barcode = self._cartridge()
        if barcode is not None:
            self.call(f"unload {barcode}", self.app.daemon.unload, barcode,
                      done=lambda answer: self._started(answer, f"unload {barcode}"))

    def action_export(self) -> None:
        self.query_one("#management-tabs", TabbedContent).active = "vault"
        self.app.push_screen(MailSlotGuide("export", None), lambda _: self.load())

    def action_import(self) -> None:
        if self.library is None:
            return self.notify("No library yet: add one with `tapeline library add`.", severity="warning")
        self.query_one("#management-tabs", TabbedContent).active = "vault"
        self.app.push_screen(MailSlotGuide("import", self.library), lambda _: self.load())

    def _started(self, answer: dict, what: str) -> None:
        self.notify(f"job {answer['job']} started (Monitoring, F1, shows it)", title=what)
        self.app.refresh_now()
