"""``synthgen catalog serve``: a read-only web page of the catalog, for auditors.

An auditor wants to see, without shell access to the catalog database, every dataset
version with its headline evaluation scores, its validation result, the privacy budget
its source has spent and where it came from, and to open the stored evaluation reports.
This module serves exactly that and nothing else:

- GET (and HEAD) only; every other method is answered 405 before any route runs, and
  there is no endpoint that writes.
- Names and versions come from the URL and are checked with the catalog's own rules
  (``check_name`` / ``parse_ref``, ASCII digits for versions and report ids) and then
  looked up in the database; no filesystem path is ever built from URL text, so a path
  traversal attempt is an unknown name (404), never a file read. Report pages are read
  only from the storage URI recorded in the report's row.
- Everything shown is HTML-escaped (names, tags, descriptions, failure messages are
  user text); the pages are self-contained (inline CSS, no JS, no external URL) and
  every response carries a strict Content-Security-Policy, ``nosniff`` and
  ``no-referrer``.
- ``serve`` listens on 127.0.0.1 unless ``allow_remote=True``: the page has no login.

Starlette, uvicorn and the catalog (pandas, SQLAlchemy) are imported only when an app is
built or served, so registering the CLI command costs nothing at ``synthgen`` start-up.
"""

from __future__ import annotations

import html
import ipaddress
import math
import re
import socket
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from synthgen.errors import ConfigError, DataError, SynthgenError

if TYPE_CHECKING:  # pragma: no cover
    import typer
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.types import Message, Receive, Scope, Send

    from pipelines.catalog.catalog import Catalog

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
ALLOWED_METHODS = ("GET", "HEAD")
#: Sent with every response, errors included. The stored report pages need inline
#: scripts and styles (and draw SVG inline); nothing may load from anywhere.
SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; script-src 'unsafe-inline'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
#: Versions and report ids: ASCII digits only (``str.isdigit`` also accepts "²" or "٣").
DIGITS = re.compile(r"[0-9]{1,18}")
#: Scores shown in the list, by exact name or by prefix (``utility.tstr_*``).
HEADLINE_SCORES = ("fidelity.overall", "utility.tstr_", "privacy.mia_auc", "dp.epsilon")
#: Privacy-spent fields shown for a DP model, in this order, when present.
SPENT_FIELDS = (
    "epsilon",
    "delta",
    "accountant",
    "noise_multiplier",
    "sample_rate",
    "steps",
    "preprocessing_epsilon",
    "training_epsilon",
)

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d2330;
background:#f6f7f9}
header{background:#1d2330;color:#fff;padding:10px 24px}header a{color:#fff;font-weight:600;
text-decoration:none}header .note{color:#aab3c2;margin-left:12px}
main{max-width:1400px;margin:0 auto;padding:20px 24px}
h1{font-size:24px;margin:4px 0 12px}h2{font-size:18px;margin-top:28px;
border-bottom:2px solid #dde1e7;padding-bottom:3px}
table{border-collapse:collapse;background:#fff;font-size:13px;margin:8px 0}
td,th{border:1px solid #e1e4ea;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#eef0f4}tr.group-head th{background:#dfe5ee;font-size:15px}
.num{text-align:right;font-variant-numeric:tabular-nums}
code{font-size:12px}.note{color:#6b7485;font-size:13px}
.pass{color:#1f7a45;font-weight:600}.fail{color:#b3261e;font-weight:600}
.score{display:block;white-space:nowrap}.score b{font-weight:600}
ul.plain{margin:0;padding-left:16px}
"""


# ----------------------------------------------------------------- HTML helpers
def esc(value: Any) -> str:
    """Escaped text for element content and quoted attribute values."""
    return html.escape("" if value is None else str(value), quote=True)


def fmt(value: Any) -> str:
    """A number as an auditor reads it (unescaped text; pass it through ``esc``)."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "n/a"
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
            return f"{value:.3g}"
        return f"{value:.4f}".rstrip("0").rstrip(".")
    return str(value)


def dataset_href(name: str, version: int) -> str:
    return f"/datasets/{quote(name, safe='')}/{int(version)}"


def report_href(report_id: int) -> str:
    return f"/reports/{int(report_id)}"


def link_ref(ref: str) -> str:
    """``name@version`` as a link to its detail page (text of the catalog, not the URL)."""
    name, _, version = ref.partition("@")
    if not DIGITS.fullmatch(version):
        return esc(ref)
    return f'<a href="{esc(dataset_href(name, int(version)))}">{esc(ref)}</a>'


def page(kind: str, title: str, body: str) -> str:
    """A complete self-contained page; ``kind`` goes into ``<meta name="synthgen-page">``."""
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<meta name="synthgen-page" content="{esc(kind)}">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>"
        f'<body data-page="{esc(kind)}"><header><a href="/">synthgen catalog</a>'
        '<span class="note">read-only view</span></header>'
        f"<main>{body}</main></body></html>"
    )


def table(table_id: str, head: Sequence[str], rows: Iterable[str], empty: str) -> str:
    """A table of pre-rendered ``<tr>`` rows, or a note when there are none."""
    rows = list(rows)
    if not rows:
        return f'<p class="note" id="{esc(table_id)}">{esc(empty)}</p>'
    cells = "".join(f"<th>{esc(h)}</th>" for h in head)
    return (
        f'<table id="{esc(table_id)}"><thead><tr>{cells}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


# ----------------------------------------------------------------- what a row shows
def headline_scores(scores: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """The scores the list shows, in ``HEADLINE_SCORES`` order."""
    out = []
    for wanted in HEADLINE_SCORES:
        if wanted.endswith("_"):
            out += [(k, scores[k]) for k in sorted(scores) if k.startswith(wanted)]
        elif wanted in scores:
            out.append((wanted, scores[wanted]))
    return out


def scores_html(reports: Sequence[Mapping[str, Any]]) -> str:
    if not reports:
        return '<span class="note">no report</span>'
    latest = reports[-1]
    shown = headline_scores(latest.get("scores") or {})
    if not shown:
        return '<span class="note">no headline scores</span>'
    return "".join(
        f'<span class="score" data-score="{esc(k)}">{esc(k)} <b>{esc(fmt(v))}</b></span>'
        for k, v in shown
    )


def validation_html(validations: Sequence[Mapping[str, Any]]) -> str:
    if not validations:
        return '<span class="note" data-validation="none">not validated</span>'
    latest = validations[-1]
    if latest.get("success"):
        return '<span class="pass" data-validation="passed">passed</span>'
    n = len(latest.get("failures") or [])
    return (
        f'<span class="fail" data-validation="failed">failed</span> '
        f"({n} failure{'s' if n != 1 else ''})"
    )


def budget_html(budgets: Mapping[str, Mapping[str, Any] | None]) -> str:
    """Spent/total of every source that has a budget; "no budget" when none has."""
    shown = [
        f'<span class="score" data-budget="{esc(source)}">{esc(source)}: '
        f"&epsilon; <b>{esc(fmt(b['spent_epsilon']))}</b> / {esc(fmt(b['epsilon']))}, "
        f"&delta; {esc(fmt(b['spent_delta']))} / {esc(fmt(b['delta']))}</span>"
        for source, b in budgets.items()
        if b is not None
    ]
    return "".join(shown) or '<span class="note" data-budget="none">no budget</span>'


def parents_html(parents: Sequence[Mapping[str, Any]]) -> str:
    if not parents:
        return '<span class="note">source (no parents)</span>'
    return "<br>".join(
        f'{link_ref(e["parent"])} <span class="note">({esc(e["relation"])})</span>' for e in parents
    )


def failure_html(failure: Any) -> str:
    """One validation failure (``ValidationFailure.to_dict()`` or any JSON value)."""
    if isinstance(failure, Mapping):
        parts = []
        if failure.get("column") is not None:
            parts.append(f"<code>{esc(failure['column'])}</code>")
        if failure.get("expectation"):
            parts.append(f'<span class="note">{esc(failure["expectation"])}</span>')
        parts.append(esc(failure.get("message") or ""))
        unexpected = failure.get("unexpected") or []
        if unexpected:
            parts.append(f'<span class="note">unexpected: {esc(unexpected[:10])}</span>')
        return " ".join(p for p in parts if p)
    return esc(failure)


# ----------------------------------------------------------------- reading the catalog
class CatalogView:
    """The catalog reads one page needs, through the catalog's public methods only.

    Budgets are cached per request (``budget_of``): on the list page every version of a
    synthetic dataset asks for the same source's budget.
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self._budgets: dict[str, dict[str, Any] | None] = {}

    def budget_of(self, source: str) -> dict[str, Any] | None:
        """The budget of ``source``, or None when it has none (the ledger raises then)."""
        if source not in self._budgets:
            try:
                self._budgets[source] = self.catalog.budget(source)
            except SynthgenError:
                self._budgets[source] = None
        return self._budgets[source]

    def budgets_for(self, name: str, upstream: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Budgets of the dataset's own name and of every upstream source name.

        Budgets belong to source names; a synthetic version is charged to the sources it
        was made from, found by walking its lineage. A source itself shows its own.
        """
        names = [name] + [str(e["parent"]).partition("@")[0] for e in upstream]
        return {n: self.budget_of(n) for n in dict.fromkeys(names)}

    def summary(self, ref: str) -> dict[str, Any]:
        """``show`` plus the full upstream lineage and the budgets it leads to."""
        shown = self.catalog.show(ref)
        lineage = self.catalog.lineage(ref)
        shown["lineage"] = lineage
        shown["budgets"] = self.budgets_for(shown["name"], lineage["upstream"])
        return shown


# ----------------------------------------------------------------- pages
def index_page(catalog: Catalog) -> str:
    """Every dataset version, grouped by name, newest version last within a name."""
    view = CatalogView(catalog)
    infos = catalog.list(all_versions=True)
    groups: dict[str, list[Any]] = {}
    for info in infos:
        groups.setdefault(info.name, []).append(info)
    head = (
        "Version",
        "Created",
        "Rows",
        "Digest",
        "Latest report scores",
        "Validation",
        "DP budget (spent / total)",
        "Lineage",
        "Links",
    )
    bodies = []
    for name, versions in groups.items():
        rows = [
            f'<tr class="group-head"><th colspan="{len(head)}" id="name-{esc(name)}">'
            f'{esc(name)} <span class="note">{len(versions)} version'
            f"{'s' if len(versions) != 1 else ''}</span></th></tr>"
        ]
        for info in versions:
            s = view.summary(info.ref)
            links = [f'<a href="{esc(dataset_href(info.name, info.version))}">details</a>']
            links += [
                f'<a href="{esc(report_href(r["id"]))}">report #{int(r["id"])}</a>'
                for r in s["reports"]
            ]
            rows.append(
                f'<tr data-ref="{esc(info.ref)}"><td class="num">{int(info.version)}</td>'
                f'<td>{esc(info.created_at)}</td><td class="num">{int(info.row_count)}</td>'
                f'<td><code title="{esc(info.digest)}">{esc(info.digest[:12])}</code></td>'
                f"<td>{scores_html(s['reports'])}</td>"
                f"<td>{validation_html(s['validations'])}</td>"
                f"<td>{budget_html(s['budgets'])}</td>"
                f"<td>{parents_html(s['parents'])}</td>"
                f"<td>{' '.join(links)}</td></tr>"
            )
        bodies.append(f'<tbody data-name="{esc(name)}">{"".join(rows)}</tbody>')
    cells = "".join(f"<th>{esc(h)}</th>" for h in head)
    if bodies:
        listing = f'<table id="datasets"><thead><tr>{cells}</tr></thead>{"".join(bodies)}</table>'
    else:
        listing = (
            '<p class="note" id="datasets">The catalog is empty: export a dataset with '
            "<code>synthgen export data.csv --name NAME</code>.</p>"
        )
    body = (
        f'<h1>Datasets</h1><p class="note">{len(groups)} dataset(s), {len(infos)} '
        f"version(s) in namespace <code>{esc(catalog.namespace)}</code>. Scores are those "
        "of each version's latest evaluation report; the budget is that of the source "
        f"names in its lineage.</p>{listing}"
    )
    return page("catalog-index", "synthgen catalog", body)


def _profile_rows(shown: Mapping[str, Any]) -> list[str]:
    kinds = {
        c.get("name"): c.get("kind")
        for c in (shown.get("schema") or {}).get("columns", [])
        if isinstance(c, Mapping)
    }
    rows = []
    for column, p in ((shown.get("profile") or {}).get("columns") or {}).items():
        top = p.get("top")
        top_text = ", ".join(f"{v} ({n})" for v, n in top) if top else ""
        rows.append(
            f"<tr><td><code>{esc(column)}</code></td><td>{esc(kinds.get(column, ''))}</td>"
            f'<td>{esc(p.get("dtype"))}</td><td class="num">{esc(p.get("null_count"))}</td>'
            f'<td class="num">{esc(p.get("distinct_count"))}</td>'
            f'<td class="num">{esc(fmt(p.get("min")) if "min" in p else "")}</td>'
            f'<td class="num">{esc(fmt(p.get("max")) if "max" in p else "")}</td>'
            f'<td class="num">{esc(fmt(p.get("mean")) if "mean" in p else "")}</td>'
            f"<td>{esc(top_text)}</td></tr>"
        )
    return rows


def _edge_rows(edges: Sequence[Mapping[str, Any]]) -> list[str]:
    return [
        f"<tr><td>{link_ref(e['child'])}</td><td>{link_ref(e['parent'])}</td>"
        f"<td>{esc(e['relation'])}</td><td>{esc(e.get('model_id') or '')}</td>"
        f"<td>{esc(e.get('job_run_id') or '')}</td></tr>"
        for e in edges
    ]


def _model_rows(models: Sequence[Mapping[str, Any]]) -> list[str]:
    rows = []
    for model in models:
        spent = model.get("privacy_spent")
        if spent:
            items = [
                f"<li>{esc(k)}: <b>{esc(fmt(spent[k]))}</b></li>"
                for k in SPENT_FIELDS
                if k in spent
            ]
            spent_html = f'<ul class="plain" data-privacy-spent="yes">{"".join(items)}</ul>'
        else:
            spent_html = '<span class="note">not trained with DP</span>'
        rows.append(
            f'<tr data-model="{esc(model.get("id"))}"><td class="num">{esc(model.get("id"))}'
            f"</td><td>{esc(model.get('backend'))}</td><td>{esc(model.get('created_at'))}</td>"
            f"<td>{spent_html}</td><td><code>{esc(model.get('digest') or '')}</code></td></tr>"
        )
    return rows


def _validation_rows(validations: Sequence[Mapping[str, Any]]) -> list[str]:
    rows = []
    for v in validations:
        failures = v.get("failures") or []
        items = "".join(f"<li>{failure_html(f)}</li>" for f in failures)
        rows.append(
            f'<tr data-validation-id="{esc(v.get("id"))}"><td class="num">{esc(v.get("id"))}'
            f"</td><td>{esc(v.get('created_at'))}</td><td>{validation_html([v])}</td>"
            f"<td>{f'<ul class=plain>{items}</ul>' if items else ''}</td></tr>"
        )
    return rows


def _report_rows(reports: Sequence[Mapping[str, Any]]) -> list[str]:
    rows = []
    for r in reports:
        scores = r.get("scores") or {}
        listed = "".join(
            f'<span class="score" data-score="{esc(k)}">{esc(k)} <b>{esc(fmt(v))}</b></span>'
            for k, v in sorted(scores.items())
        )
        rows.append(
            f'<tr data-report="{int(r["id"])}"><td><a href="{esc(report_href(r["id"]))}">'
            f"report #{int(r['id'])}</a></td><td>{esc(r.get('created_at'))}</td>"
            f"<td>{listed}</td></tr>"
        )
    return rows


def _budget_rows(budgets: Mapping[str, Mapping[str, Any] | None]) -> list[str]:
    rows = []
    for source, b in budgets.items():
        if b is None:
            continue
        rows.append(
            f'<tr data-budget="{esc(source)}"><td>{esc(source)}</td>'
            f'<td class="num">{esc(fmt(b["spent_epsilon"]))} / {esc(fmt(b["epsilon"]))}</td>'
            f'<td class="num">{esc(fmt(b["spent_delta"]))} / {esc(fmt(b["delta"]))}</td>'
            f'<td class="num">{len(b.get("charges") or [])}</td></tr>'
        )
    return rows


def dataset_page(catalog: Catalog, ref: str) -> str:
    """Everything the catalog knows about one version."""
    view = CatalogView(catalog)
    s = view.summary(ref)
    name, version = s["name"], int(s["version"])
    meta_fields = [
        ("namespace", esc(s["namespace"])),
        ("name", esc(name)),
        ("version", str(version)),
        ("digest", f"<code>{esc(s['digest'])}</code>"),
        ("storage URI", f"<code>{esc(s['uri'])}</code>"),
        ("format", esc(s["format"])),
        ("rows", str(int(s["row_count"]))),
        ("bytes", str(int(s["bytes"]))),
        ("created", esc(s["created_at"])),
        ("owner", esc(s.get("owner") or "")),
        ("tags", esc(", ".join(s.get("tags") or []))),
        ("description", esc(s.get("description") or "")),
        ("state", esc(s["state"])),
    ]
    metadata = "".join(f"<tr><th>{esc(k)}</th><td>{v}</td></tr>" for k, v in meta_fields)
    others = [i for i in catalog.list(name, all_versions=True) if i.version != version]
    other_links = ", ".join(link_ref(i.ref) for i in others) or "none"
    edge_head = ("Child", "Parent", "Relation", "Model", "Job run")
    budgets = _budget_rows(s["budgets"])
    body = (
        f'<h1 data-ref="{esc(f"{name}@{version}")}">{esc(name)}@{version}</h1>'
        f'<p class="note">Other versions: {other_links}</p>'
        f'<table id="metadata"><tbody>{metadata}</tbody></table>'
        "<h2>Privacy budget of its sources</h2>"
        + table(
            "budgets",
            ("Source", "Epsilon spent / total", "Delta spent / total", "Charges"),
            budgets,
            "no budget: none of its source names has a privacy budget",
        )
        + "<h2>Lineage: upstream</h2>"
        + table("lineage-up", edge_head, _edge_rows(s["lineage"]["upstream"]), "no parents")
        + "<h2>Lineage: downstream</h2>"
        + table("lineage-down", edge_head, _edge_rows(s["lineage"]["downstream"]), "none")
        + "<h2>Evaluation reports</h2>"
        + table("reports", ("Report", "Created", "Scores"), _report_rows(s["reports"]), "none")
        + "<h2>Validations</h2>"
        + table(
            "validations",
            ("Id", "Created", "Result", "Failures"),
            _validation_rows(s["validations"]),
            "not validated",
        )
        + "<h2>Models</h2>"
        + table(
            "models",
            ("Id", "Backend", "Created", "Privacy spent", "File digest"),
            _model_rows(s["models"]),
            "no model recorded in its lineage",
        )
        + "<h2>Profile</h2>"
        + table(
            "profile",
            ("Column", "Kind", "Dtype", "Nulls", "Distinct", "Min", "Max", "Mean", "Top values"),
            _profile_rows(s),
            "no profile",
        )
    )
    return page("dataset", f"{name}@{version} - synthgen catalog", body)


def error_page(status: int, message: str) -> str:
    title = {404: "Not found", 405: "Method not allowed"}.get(status, "Error")
    body = f'<h1>{esc(title)}</h1><p id="error" data-status="{status}">{esc(message)}</p>'
    return page("not-found" if status == 404 else "error", title, body)


# ----------------------------------------------------------------- URL checks
def dataset_ref(name: str, version: str) -> str:
    """The catalog reference for URL parts, or ``DataError`` (a 404) when invalid.

    Only names the catalog itself accepts pass (``check_name`` rejects '.', '..', '/',
    '%' and anything else a path could be made of), versions are ASCII digits.
    """
    from pipelines.catalog.catalog import check_name, parse_ref

    try:
        check_name(name)
    except ConfigError:
        raise DataError("no dataset with that name in this catalog") from None
    if not DIGITS.fullmatch(version) or int(version) < 1:
        raise DataError(f"dataset {name!r} has no version {version!r}")
    ref = f"{name}@{int(version)}"
    parse_ref(ref)  # the catalog's own parser agrees
    return ref


def report_id_of(text: str) -> int:
    if not DIGITS.fullmatch(text):
        raise DataError("no report with that id in this catalog")
    return int(text)


# ----------------------------------------------------------------- the ASGI app
class ReadOnlyGuard:
    """Outermost middleware: 405 for any method but GET/HEAD, security headers always."""

    def __init__(self, app: Callable[..., Any]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", [])
                    if k.decode("latin-1").lower() not in _LOWER_SECURITY
                ]
                headers += [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        if scope["method"] not in ALLOWED_METHODS:
            from starlette.responses import HTMLResponse

            response = HTMLResponse(
                error_page(405, f"{scope['method']} is not allowed: this page is read-only"),
                status_code=405,
                headers={"Allow": ", ".join(ALLOWED_METHODS)},
            )
            await response(scope, receive, send_with_headers)
            return
        await self.app(scope, receive, send_with_headers)


_LOWER_SECURITY = {k.lower() for k in SECURITY_HEADERS}


def create_app(catalog: Catalog) -> Starlette:
    """The read-only Starlette app over ``catalog`` (which the caller keeps and closes).

    Handlers are plain functions (Starlette runs them in its thread pool, so the
    synchronous catalog does not block the event loop). Every handler turns a
    ``SynthgenError`` from a lookup (unknown name, version or report, a name the catalog
    would refuse) into a 404 page and any other error into a 500 page without details.
    """
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware
    from starlette.responses import HTMLResponse, JSONResponse
    from starlette.routing import Route

    def guarded(handler: Callable[[Request], Response]) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            try:
                return handler(request)
            except SynthgenError as exc:
                return HTMLResponse(error_page(404, str(exc)), status_code=404)
            except Exception:  # noqa: BLE001 - an auditor sees no traceback
                import logging

                logging.getLogger("synthgen.serve").exception("error serving %s", request.url)
                return HTMLResponse(
                    error_page(500, "the catalog could not be read; see the server log"),
                    status_code=500,
                )

        endpoint.__name__ = handler.__name__
        return endpoint

    def index(request: Request) -> Response:
        return HTMLResponse(index_page(catalog))

    def dataset(request: Request) -> Response:
        ref = dataset_ref(request.path_params["name"], request.path_params["version"])
        return HTMLResponse(dataset_page(catalog, ref))

    def report(request: Request) -> Response:
        report_id = report_id_of(request.path_params["report_id"])
        return HTMLResponse(catalog.report_html(report_id))

    def api_datasets(request: Request) -> Response:
        return JSONResponse([info.to_dict() for info in catalog.list(all_versions=True)])

    async def not_found(request: Request, exc: HTTPException) -> Response:
        status = exc.status_code if exc.status_code in (404, 405) else 404
        message = "nothing here" if status == 404 else "this page is read-only"
        return HTMLResponse(error_page(status, message), status_code=status)

    routes = [
        Route("/", guarded(index), methods=["GET"]),
        Route("/datasets/{name}/{version}", guarded(dataset), methods=["GET"]),
        Route("/reports/{report_id}", guarded(report), methods=["GET"]),
        Route("/api/datasets", guarded(api_datasets), methods=["GET"]),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(ReadOnlyGuard)],
        exception_handlers={404: not_found, 405: not_found},
    )


# ----------------------------------------------------------------- serving
def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_host(host: str, allow_remote: bool) -> None:
    if not isinstance(host, str) or not host:
        raise ConfigError(f"--host {host!r} must be a host name or IP address, e.g. 127.0.0.1")
    if not allow_remote and not is_loopback(host):
        raise ConfigError(
            f"--host {host} is not a loopback address: the catalog page has no login, so "
            "anyone who can reach it could read the catalog. Serve on 127.0.0.1 (the "
            "default) behind an authenticating proxy, or pass --allow-remote "
            "(allow_remote=True) if this network is trusted"
        )


def check_port(port: object) -> int:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"--port {port!r} must be an integer from 1 to 65535 (0: any free port)")
    return port


def _check_catalog_exists(url: str | None) -> str:
    """The resolved URL; a missing SQLite file is an error (serving must not create one)."""
    from pathlib import Path

    from sqlalchemy.engine import make_url

    from pipelines.catalog import resolve_url

    resolved = resolve_url(url)
    parsed = make_url(resolved)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "").expanduser()
        if not path.is_file():
            raise ConfigError(
                f"there is no catalog database at {path.resolve()}; pass --catalog "
                "sqlite:///path/to/synthgen.db (or set SYNTHGEN_CATALOG_URL), or export a "
                "dataset first: synthgen export data.csv --name NAME"
            )
    return resolved


def bind(host: str, port: int) -> socket.socket:
    """A listening-ready socket on (host, port); a clear ConfigError when it is taken."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host}: cannot resolve it ({exc}); use e.g. 127.0.0.1") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port "
            "(0 picks a free one)"
        ) from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def serve(
    catalog_url: str | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    allow_remote: bool = False,
    log_level: str = "warning",
) -> None:
    """Serve the read-only catalog page until interrupted (Ctrl+C).

    ``catalog_url`` is a catalog URL (None: ``SYNTHGEN_CATALOG_URL`` or ./synthgen.db);
    the SQLite file must exist. A host other than loopback is refused unless
    ``allow_remote=True``. The URL to open is printed once the port is bound.
    """
    import uvicorn

    from pipelines.catalog import Catalog

    check_host(host, allow_remote)
    port = check_port(port)
    url = _check_catalog_exists(catalog_url)
    catalog = Catalog(url)
    sock = bind(host, port)
    try:
        config = uvicorn.Config(
            create_app(catalog),
            log_level=log_level,
            lifespan="off",
            server_header=False,
            proxy_headers=False,
        )
        print(f"synthgen catalog (read-only): {url_of(sock)}  (Ctrl+C to stop)", flush=True)
        if not is_loopback(host):
            print(
                "warning: this page has no login; anyone who reaches this address can read it",
                file=sys.stderr,
                flush=True,
            )
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        catalog.close()


# ----------------------------------------------------------------- the CLI command
def register(catalog_app: typer.Typer) -> None:
    """Add ``serve`` to the ``synthgen catalog`` sub-app.

    Errors are printed as one ``error: ...`` line on stderr with exit code 2, as every
    other synthgen command does.
    """
    import typer

    @catalog_app.command("serve")
    def serve_command(
        catalog: str | None = typer.Option(
            None,
            "--catalog",
            help="Catalog URL (default: SYNTHGEN_CATALOG_URL or sqlite:///synthgen.db).",
        ),
        host: str = typer.Option(DEFAULT_HOST, "--host", help="Address to listen on."),
        port: int = typer.Option(DEFAULT_PORT, "--port", help="Port (0: any free port)."),
        allow_remote: bool = typer.Option(
            False,
            "--allow-remote",
            help="Allow a non-loopback --host (the page has no login).",
        ),
    ) -> None:
        """Serve a read-only web page of the catalog for auditors (127.0.0.1 by default)."""
        try:
            serve(catalog, host=host, port=port, allow_remote=allow_remote)
        except SynthgenError as exc:
            sys.stderr.write(f"error: {' '.join(str(exc).split())}\n")
            sys.stderr.flush()
            raise typer.Exit(code=2) from None
