"""Campaigns: the list, a new campaign from spreadsheets, its settings, the preview, launching,
the live page and its controls. Handlers are plain ``def``: FastAPI runs them in its thread pool,
so file reading and the ledger stay off the event loop."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from starlette.datastructures import FormData, UploadFile
from starlette.responses import FileResponse, RedirectResponse, Response

from ccm_tasks.console import controls
from ccm_tasks.console.definitions import NAME_RE, NoSuchDefinition, relative, to_mapping
from ccm_tasks.console.deps import (
    CSRF,
    ConsoleState,
    Manager,
    Operator,
    State,
    render,
)
from ccm_tasks.console.forms import FormState, apply_form, form_values, problems_by_field
from ccm_tasks.console.launcher import prefect_server_url, update_schedule
from ccm_tasks.console.uploads import (
    StoredFile,
    UploadRefused,
    count_rows,
    preview,
    remove_folder,
    store_upload,
)
from ccm_tasks.dialer.config import config_from_definition
from ccm_tasks.dialer.window import WEEKDAYS
from ccm_tasks.inputs import DefinitionError, InputError, preflight, rejects_table
from ccm_tasks.inputs.definition import RETRYABLE_STATUSES, check_cron
from ccm_tasks.ledger.users import User
from ccm_tasks.paths import campaign_reports_dir
from ccm_tasks.redact import mask_phones_in

router = APIRouter()
log = logging.getLogger("ccm.console")

REJECTS_SHOWN = 25


def _name_or_404(name: str) -> str:
    if not NAME_RE.match(name):
        raise NoSuchDefinition(name)
    return name


@dataclass(frozen=True)
class CampaignRow:
    """One line of the campaign list."""

    name: str
    state: str
    detail: str
    customers: int
    final: int
    progress: float
    has_definition: bool
    in_ledger: bool


@router.get("/")
def campaign_list(request: Request, user: Manager,
                  state: State) -> Response:
    """Every campaign: those in the ledger with their state, and definitions not run yet."""
    rows: dict[str, CampaignRow] = {}
    definitions = {d.name for _, d in state.workspace.definitions()}
    for s in controls.status(state.ledger):
        rows[s.name] = CampaignRow(s.name, s.state, s.detail, s.customers, s.final, s.progress,
                                   s.name in definitions, True)
    for name in sorted(definitions - rows.keys()):
        rows[name] = CampaignRow(name, "not started", "defined, never launched", 0, 0, 0.0, True, False)
    return render(request, "campaigns.html", {"campaigns": sorted(rows.values(), key=lambda r: r.name)},
                  user=user)


# --------------------------------------------------------------------------- new campaign


def _new_form_context(state: ConsoleState, values: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    return {"values": values, "errors": errors, "rosters": state.workspace.known_rosters(),
            "dnc_lists": state.workspace.known_do_not_call(),
            "max_upload_mb": state.settings.max_upload_mb, "max_rows": state.settings.max_rows}


@router.get("/campaigns/new")
def new_campaign_page(request: Request, user: Operator,
                      state: State) -> Response:
    """Step 1: name, customer spreadsheets, agents, do-not-call list, virtual number."""
    return render(request, "new.html", _new_form_context(state, {}, {}), user=user)


@router.post("/campaigns/new", dependencies=[CSRF])
async def new_campaign(request: Request, user: Operator,
                       state: State) -> Response:
    """Store the uploads under ``campaigns/<name>/uploads/`` and write a first definition."""
    form = await request.form()
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_create_campaign, request, form, user, state)


def _new_form_again(request: Request, state: ConsoleState, values: dict[str, Any], errors: dict[str, str],
                    user: User) -> Response:
    return render(request, "new.html", _new_form_context(state, values, errors), status_code=400, user=user)


def _files(form: FormData, field: str) -> list[UploadFile]:
    return [f for f in form.getlist(field) if isinstance(f, UploadFile) and (f.filename or f.size)]


def _text(form: FormData, field: str) -> str:
    value = form.get(field)
    return value.strip() if isinstance(value, str) else ""


def _create_campaign(request: Request, form: FormData, user: User, state: ConsoleState) -> Response:
    values = {k: _text(form, k) for k in ("name", "description", "virtual_number", "roster", "dnc")}
    name = values["name"]
    uploads = {"customers": _files(form, "customers"), "agents": _files(form, "agents_file"),
               "dnc": _files(form, "dnc_file")}
    rosters = {str(i): k for i, k in enumerate(state.workspace.known_rosters())}
    dnc_lists = {str(i): k for i, k in enumerate(state.workspace.known_do_not_call())}
    errors = _new_campaign_problems(values, uploads, rosters)
    if errors:
        return _new_form_again(request, state, values, errors, user)
    folder = state.workspace.folder_for(name)
    try:
        folder.mkdir(parents=True, exist_ok=False)  # the race between two operators is decided here
    except FileExistsError:
        errors["name"] = f"There is already a campaign named {name}; choose another name."
        return _new_form_again(request, state, values, errors, user)
    try:
        stored = _store_uploads(uploads, folder, state, errors)
        if not errors:
            agents = stored["agents"][0].path if stored["agents"] else rosters[values["roster"]].path
            dnc = [s.path for s in stored["dnc"]] or (
                [dnc_lists[values["dnc"]].path] if values["dnc"] in dnc_lists else [])
            mapping: dict[str, Any] = {
                **state.workspace.template_settings(), "name": name, "description": values["description"],
                "customers": {"files": [{"path": relative(s.path, folder), "sheet": "*"}
                                        for s in stored["customers"]]},
                "agents": relative(agents, folder), "do_not_call": [relative(p, folder) for p in dnc],
                "virtual_number": values["virtual_number"]}
            try:
                state.workspace.write(name, mapping, by=user.name)
            except DefinitionError as exc:
                by_field, general = problems_by_field(exc)
                errors.update(by_field)
                if general:
                    errors["general"] = "; ".join(general)
        if errors:
            remove_folder(folder)
            return render(request, "new.html", _new_form_context(state, values, errors), status_code=400,
                          user=user)
    except BaseException:
        remove_folder(folder)
        raise
    log.info("%s created campaign %s (%d customer files)", user.name, name, len(stored["customers"]))
    return RedirectResponse(f"/campaigns/{name}/edit", status_code=303)


def _new_campaign_problems(values: dict[str, str], uploads: dict[str, list[Any]],
                           rosters: dict[str, Any]) -> dict[str, str]:
    """What is missing or wrong in the new-campaign form, by field."""
    errors: dict[str, str] = {}
    if not NAME_RE.match(values["name"]):
        errors["name"] = "Use 1-64 letters, digits, '_' or '-' (it names the campaign's files and reports)."
    if not uploads["customers"]:
        errors["customers"] = "Choose at least one customer spreadsheet (CSV or Excel)."
    if not uploads["agents"] and values["roster"] not in rosters:
        errors["agents"] = "Upload the agents roster, or pick one already known."
    if not values["virtual_number"]:
        errors["virtual_number"] = "Give the virtual number (ExoPhone) calls come from."
    return errors


def _store_uploads(uploads: dict[str, list[Any]], folder: Path, state: ConsoleState,
                   errors: dict[str, str]) -> dict[str, list[StoredFile]]:
    """Store every upload under the campaign's folder (safe names, size limits); refusals go to
    ``errors`` by field, and so does a campaign with more rows than the console takes."""
    limits = {"max_bytes": int(state.settings.max_upload_mb * 2**20),
              "max_expanded_bytes": int(state.settings.max_workbook_expanded_mb * 2**20)}
    stored: dict[str, list[StoredFile]] = {"customers": [], "agents": [], "dnc": []}
    for key, files in uploads.items():
        for upload in files:
            try:
                stored[key].append(store_upload(upload.file, folder, upload.filename, **limits))
            except UploadRefused as exc:
                errors[key] = str(exc)
    if not errors:
        rows = count_rows([s.path for s in stored["customers"]])
        if rows > state.settings.max_rows:
            errors["customers"] = (f"The files hold {rows:,} rows; the console takes at most "
                                   f"{state.settings.max_rows:,} per campaign. Split the campaign.")
    return stored


# --------------------------------------------------------------------------- settings


def _settings_context(state: ConsoleState, name: str, form: FormState) -> dict[str, Any]:
    definition = state.workspace.load(name)
    mapping = to_mapping(definition, definition.base_dir)
    phone = definition.customers.columns.phone
    previews = []
    headers: dict[str, None] = {}
    for entry in definition.customers.files:
        try:
            tables = preview(entry.path, phone_column=phone)
            problem = None
        except InputError as exc:
            tables, problem = [], str(exc)
        for table in tables:
            headers.update(dict.fromkeys(table.headers))
        previews.append({"file": definition.display_path(entry.path), "sheet": entry.sheet,
                         "tables": tables, "problem": problem,
                         "sheets": [t.sheet for t in tables if t.sheet]})
    return {"name": name, "form": form, "previews": previews, "headers": list(headers),
            "definition_path": state.workspace.path_for(name), "mapping": mapping,
            "agents": definition.display_path(definition.agents),
            "do_not_call": [definition.display_path(p) for p in definition.do_not_call],
            "retryable": RETRYABLE_STATUSES, "weekdays": WEEKDAYS, "own": state.workspace.owns(name)}


@router.get("/campaigns/{name}/edit")
def settings_page(request: Request, name: str, user: Operator,
                  state: State) -> Response:
    """Step 2: sheets, column mapping (with a preview of each sheet), window, retries, options."""
    definition = state.workspace.load(_name_or_404(name))
    form = FormState(form_values(to_mapping(definition, definition.base_dir)))
    return render(request, "settings.html", _settings_context(state, name, form), user=user)


@router.post("/campaigns/{name}/edit", dependencies=[CSRF])
async def save_settings(request: Request, name: str, user: Operator,
                        state: State) -> Response:
    """Validate the settings as a definition and write it; problems go next to their fields."""
    form = await request.form()
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_save_settings, request, _name_or_404(name), form, user, state)


def _save_settings(request: Request, name: str, form: FormData, user: User, state: ConsoleState) -> Response:
    if not state.workspace.owns(name):
        file = state.workspace.path_for(name).name
        return _outcome(request, user, name, False, "This definition was written by hand, so the console "
                        f"does not rewrite it (it would lose its comments): edit {file} by hand, or "
                        "create the campaign in the console.", status_code=400)
    definition = state.workspace.load(name)
    base = to_mapping(definition, definition.base_dir)
    values: dict[str, Any] = {}
    for key in form:
        items = [v for v in form.getlist(key) if isinstance(v, str)]
        values[key] = items if key in ("retry_on", "days", "sheet") else (items[0] if items else "")
    mapping = apply_form(base, values)
    try:
        state.workspace.write(name, mapping, by=user.name)
    except DefinitionError as exc:
        by_field, general = problems_by_field(exc)
        shown = form_values(mapping)
        return render(request, "settings.html",
                      _settings_context(state, name, FormState(shown, by_field, general)),
                      status_code=400, user=user)
    log.info("%s saved the settings of campaign %s", user.name, name)
    return RedirectResponse(f"/campaigns/{name}/preview", status_code=303)


# --------------------------------------------------------------------------- preview and launch


def _rejects_path(name: str) -> Path:
    return campaign_reports_dir(name) / "rejects.csv"


@router.get("/campaigns/{name}/preview")
def preview_page(request: Request, name: str, user: Manager,
                 state: State) -> Response:
    """The pre-flight of ``ccm validate``, in words, with the launch buttons."""
    path = state.workspace.path_for(_name_or_404(name))
    report = preflight(path, rejects_path=_rejects_path(name), ledger=state.ledger.url)
    context: dict[str, Any] = {"name": name, "report": report, "definition_path": path,
                               "prefect_server": prefect_server_url() is not None}
    if report.inputs is not None:
        inputs = report.inputs
        table = rejects_table(inputs)
        context["rejects"] = table.head(REJECTS_SHOWN).to_dict("records")
        context["rejects_total"] = len(table)
        context["skipped"] = inputs.rows_read - len(inputs.customers)
        context["kinds"] = {
            "rejected": len(inputs.rejects), "duplicate": len(inputs.duplicates),
            "suppressed": len(inputs.suppressed)}
        context["preferred"] = int(inputs.customers["preferred_agent"].notna().sum())
    if report.definition is not None:
        d = report.definition
        context["window_now"] = config_from_definition(d).window.describe(time.time())
        context["live"] = state.launcher.live_run(name)
    return render(request, "preview.html", context, user=user)


@router.get("/campaigns/{name}/rejects.csv")
def rejects_download(name: str, user: Manager) -> Response:
    """The rejects file of the last preview or run."""
    path = _rejects_path(_name_or_404(name))
    if not path.exists():
        raise NoSuchDefinition(name)
    return FileResponse(path, media_type="text/csv", filename=f"{name}-rejects.csv")


@router.post("/campaigns/{name}/launch", dependencies=[CSRF])
def launch(request: Request, name: str, user: Operator, state: State,
           when: Annotated[str, Form()] = "now", start_at: Annotated[str, Form()] = "",
           cron: Annotated[str, Form()] = "",
           cron_timezone: Annotated[str, Form()] = "Asia/Kolkata") -> Response:
    """Launch now, at a time (the run waits for it), or put the campaign on a schedule."""
    name = _name_or_404(name)
    path = state.workspace.path_for(name)
    definition = state.workspace.load(name)
    mapping = to_mapping(definition, definition.base_dir)
    own = state.workspace.owns(name)
    if when in ("schedule", "at") and not own:
        return _outcome(request, user, name, False, "Only campaigns created in the console can get a start "
                        f"time or a schedule here; edit {path.name} by hand (start_at, schedule).",
                        status_code=400)
    if when == "schedule":
        try:
            mapping["schedule"] = {"cron": check_cron(cron), "timezone": cron_timezone}
            state.workspace.write(name, mapping, by=user.name)
        except (ValueError, DefinitionError) as exc:
            return _outcome(request, user, name, False, f"The schedule was not saved: {exc}", status_code=400)
        message = update_schedule(name, cron, cron_timezone)
        log.info("%s scheduled campaign %s: %s %s", user.name, name, cron, cron_timezone)
        return _outcome(request, user, name, True, f"Schedule {cron} ({cron_timezone}): {message}")
    if when == "at":
        if not start_at:
            return _outcome(request, user, name, False, "Give the time to start at.", status_code=400)
        mapping["start_at"] = start_at
        try:
            state.workspace.write(name, mapping, by=user.name)
        except DefinitionError as exc:
            return _outcome(request, user, name, False, f"The start time was not saved: {exc}",
                            status_code=400)
    result = state.launcher.launch(name, path, by=user.name)
    log.info("%s launched campaign %s: %s", user.name, name, result.message)
    status_code = 200 if result.ok else 409
    return _outcome(request, user, name, result.ok, result.message, status_code=status_code,
                    log_path=result.log_path)


def _outcome(request: Request, user: User, name: str, ok: bool, message: str, *, status_code: int = 200,
             log_path: Path | None = None) -> Response:
    return render(request, "launched.html", {"name": name, "ok": ok, "message": mask_phones_in(message),
                                             "log_path": log_path}, status_code=status_code, user=user)


# --------------------------------------------------------------------------- watch and control


def _status_context(state: ConsoleState, name: str) -> dict[str, Any]:
    try:
        found = controls.status(state.ledger, name)
    except controls.CampaignNotFound:
        found = []
    current = found[0] if found else None
    api = prefect_server_url()
    ui = os.environ.get("PREFECT_UI_URL") or (api.removesuffix("/api") if api else None)
    return {"name": name, "status": current, 
            "flow_run_url": f"{ui}/runs/flow-run/{current.flow_run_id}" if current and current.flow_run_id
            and ui else None}


@router.get("/campaigns/{name}")
def campaign_page(request: Request, name: str, user: Manager,
                  state: State) -> Response:
    """The campaign's live page: figures update by themselves (htmx polling)."""
    name = _name_or_404(name)
    context = _status_context(state, name)
    try:
        context["definition_path"] = state.workspace.path_for(name)
    except NoSuchDefinition:
        context["definition_path"] = None
    return render(request, "campaign.html", context, user=user)


@router.get("/campaigns/{name}/live")
def campaign_live(request: Request, name: str, user: Manager,
                  state: State) -> Response:
    """The live part of the campaign page (what htmx swaps in every two seconds)."""
    return render(request, "_live.html", _status_context(state, _name_or_404(name)), user=user)


@router.post("/campaigns/{name}/control", dependencies=[CSRF])
def control(request: Request, name: str, user: Operator, state: State, action: Annotated[str, Form()],
            reason: Annotated[str, Form()] = "") -> Response:
    """Pause, resume or stop, with the reason recorded under the user's name."""
    name = _name_or_404(name)
    actions = {"pause": controls.pause, "resume": controls.resume, "stop": controls.stop}
    if action not in actions:
        return _control_outcome(request, user, name, False, f"Unknown action {action!r}.", 400)
    if not reason.strip():
        return _control_outcome(request, user, name, False, f"Say why you {action} the campaign: the reason "
                                "is recorded with your name.", 400)
    try:
        change = actions[action](state.ledger, name, by=user.name, reason=reason.strip()[:500])
    except controls.CampaignNotFound as exc:
        return _control_outcome(request, user, name, False, str(exc), 404)
    except controls.ControlRefused as exc:
        return _control_outcome(request, user, name, False, str(exc), 409)
    log.info("%s: %s %s (%s)", user.name, action, name, reason.strip()[:200])
    return _control_outcome(request, user, name, True, change.message, 200)


def _control_outcome(request: Request, user: User, name: str, ok: bool, message: str,
                     status_code: int) -> Response:
    return render(request, "launched.html", {"name": name, "ok": ok, "message": message, "log_path": None,
                                             "control": True}, status_code=status_code, user=user)
