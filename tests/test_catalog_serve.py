"""The auditors' page (``synthgen catalog serve``): content, escaping, read-only, traversal,
security headers, the serve() guard rails, the CLI command, and a real browser run."""

from __future__ import annotations

import builtins
import http.client
import io
import os
import re
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from browser import dump_dom
from starlette.testclient import TestClient
from typer.testing import CliRunner

from evaluation import evaluate
from pipelines.catalog import Catalog, Parent
from pipelines.serve import SECURITY_HEADERS, bind, create_app, register, serve
from privacy.accounting import DPConfig, PrivacySpent
from synthgen.errors import ConfigError

XSS = "<script>alert(1)</script>"
FAILURE = {
    "expectation": "expect_column_values_to_be_between",
    "column": "age",
    "message": "age has 3 values above 90 <b>bold</b>",
    "unexpected": [91, 95, 99],
}


class FakeDPModel:
    """Just what ``commit_charge`` reads from a DP-trained model."""

    dp = DPConfig(epsilon=1.0, delta=1e-7)
    privacy_spent = PrivacySpent(
        epsilon=0.9,
        delta=1e-7,
        accountant="rdp",
        noise_multiplier=1.1,
        sample_rate=0.01,
        steps=300,
        preprocessing_epsilon=0.1,
        training_epsilon=0.8,
        preprocessing_delta=0.0,
        training_delta=1e-7,
    )
    training_log_ = None

    def get_params(self) -> dict:
        return {"epochs": 3}


def frame(seed: int, n: int = 120) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.integers(18, 90, n),
            "city": rng.choice(["Paris", "Lyon", "Nice"], n),
            "income": np.round(rng.lognormal(10, 1, n), 2),
        }
    )


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Catalog:
    """adult (budget 3, one DP fit) -> adult_synth@1,@2 -> adult_aug@1; census: no budget."""
    root = tmp_path_factory.mktemp("serve")
    cat = Catalog(f"sqlite:///{root}/c.db", storage=root / "store")
    real = frame(0)
    cat.export(real, "adult", tags=["source"], description="UCI Adult sample")
    cat.export(frame(9), "census")
    cat.set_budget("adult", 3.0)
    charge = cat.reserve("adult", 1.0, 1e-7, "fit x")
    model_id = cat.commit_charge(charge, FakeDPModel())
    report = evaluate(real=real, synthetic=frame(1), metrics=["fidelity"])
    report.scores.update({"utility.tstr_roc_auc": 0.81, "privacy.mia_auc": 0.52, "dp.epsilon": 0.9})
    cat.export(
        frame(1),
        "adult_synth",
        parents=["adult"],
        report=report,
        validation={"success": True, "failures": []},
        model_id=model_id,
    )
    second = evaluate(real=real, synthetic=frame(2), metrics=["fidelity"])
    cat.export(
        frame(2),
        "adult_synth",
        parents=["adult"],
        report=second,
        validation={"success": False, "failures": [FAILURE]},
    )
    cat.export(frame(3), "adult_aug", parents=[Parent("adult_synth@1", "augmented_from")])
    yield cat
    cat.close()


@pytest.fixture(scope="module")
def client(catalog) -> TestClient:
    with TestClient(create_app(catalog)) as c:
        yield c


def rows_by_ref(page: str) -> dict[str, str]:
    return dict(re.findall(r'<tr data-ref="([^"]+)">(.*?)</tr>', page, re.S))


# ----------------------------------------------------------------- the list page
def test_index_lists_every_version_with_scores_validation_budget_lineage(client, catalog):
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert '<meta name="synthgen-page" content="catalog-index">' in page
    assert 'id="datasets"' in page
    rows = rows_by_ref(page)
    assert set(rows) == {"adult@1", "census@1", "adult_synth@1", "adult_synth@2", "adult_aug@1"}
    for name in ("adult", "adult_synth", "adult_aug", "census"):  # grouped by name
        assert f'<tbody data-name="{name}">' in page
    group = page.split('<tbody data-name="adult_synth">')[1].split("</tbody>")[0]
    assert group.index('data-ref="adult_synth@1"') < group.index('data-ref="adult_synth@2"')

    synth1 = rows["adult_synth@1"]
    scores = dict(re.findall(r'data-score="([^"]+)">[^<]*<b>([^<]+)</b>', synth1))
    report = catalog.reports("adult_synth@1")[-1]
    assert scores == {
        "fidelity.overall": f"{report['scores']['fidelity.overall']:.4f}".rstrip("0"),
        "utility.tstr_roc_auc": "0.81",
        "privacy.mia_auc": "0.52",
        "dp.epsilon": "0.9",
    }
    assert "fidelity.column_shapes" not in synth1  # only the headline numbers
    assert 'data-validation="passed"' in synth1
    assert "failed</span> (1 failure)" in rows["adult_synth@2"]
    assert 'data-validation="none"' in rows["adult@1"]
    assert "no report" in rows["adult@1"]
    # the source's budget: 0.9 spent of 3 (the receipt replaced the 1.0 reservation)
    for ref in ("adult@1", "adult_synth@1", "adult_synth@2", "adult_aug@1"):
        assert re.search(r'data-budget="adult">adult: &epsilon; <b>0.9</b> / 3,', rows[ref]), ref
    assert 'data-budget="none">no budget' in rows["census@1"]
    # lineage: parents with their relation, linked to their pages
    assert '<a href="/datasets/adult/1">adult@1</a>' in synth1 and "(sampled_from)" in synth1
    assert "adult_synth@1</a>" in rows["adult_aug@1"] and "(augmented_from)" in rows["adult_aug@1"]
    assert "source (no parents)" in rows["adult@1"]
    # links to the detail page and to each report page
    assert '<a href="/datasets/adult_synth/1">details</a>' in synth1
    assert f'<a href="/reports/{report["id"]}">report #{report["id"]}</a>' in synth1
    digest = catalog.get("adult_synth@1").digest
    assert f'<code title="{digest}">{digest[:12]}</code>' in synth1
    assert f'<td class="num">{120}</td>' in synth1


def test_pages_are_self_contained(client):
    for url in ("/", "/datasets/adult_synth/1", "/nothing"):
        page = client.get(url).text
        for needle in ("http://", "https://", "src=", "<link", "<script", "<img"):
            assert needle not in page, (url, needle)
        assert "<style>" in page


def test_empty_catalog_says_so(tmp_path):
    with Catalog(f"sqlite:///{tmp_path}/c.db", storage=tmp_path / "store") as cat:
        page = TestClient(create_app(cat)).get("/").text
    assert '<p class="note" id="datasets">The catalog is empty' in page


# ----------------------------------------------------------------- detail and reports
def test_detail_page_shows_metadata_profile_lineage_validations_models_reports(client, catalog):
    page = client.get("/datasets/adult_synth/1").text
    assert '<meta name="synthgen-page" content="dataset">' in page
    assert '<h1 data-ref="adult_synth@1">' in page
    assert catalog.get("adult_synth@1").digest in page
    profile = page.split('id="profile"')[1].split("</table>")[0]
    for column in ("age", "city", "income"):
        assert f"<code>{column}</code>" in profile
    assert "numerical" in profile and "categorical" in profile
    up = page.split('id="lineage-up"')[1].split("</table>")[0]
    # columns: child, parent, relation, model
    assert re.search(
        r"adult_synth@1</a></td><td><a [^>]+>adult@1</a></td><td>sampled_from</td><td>1<", up
    )
    down = page.split('id="lineage-down"')[1].split("</table>")[0]
    assert "adult_aug@1" in down and "augmented_from" in down
    models = page.split('id="models"')[1].split("</table>")[0]
    assert "FakeDPModel" in models and 'data-privacy-spent="yes"' in models
    assert "epsilon: <b>0.9</b>" in models and "accountant: <b>rdp</b>" in models
    assert "steps: <b>300</b>" in models
    assert 'data-validation="passed"' in page.split('id="validations"')[1]
    rid = catalog.reports("adult_synth@1")[0]["id"]
    assert f'<a href="/reports/{rid}">report #{rid}</a>' in page.split('id="reports"')[1]
    assert 'data-budget="adult"' in page.split('id="budgets"')[1]
    assert '<a href="/datasets/adult_synth/2">adult_synth@2</a>' in page  # other versions


def test_detail_page_lists_validation_failures_escaped(client):
    page = client.get("/datasets/adult_synth/2").text
    validations = page.split('id="validations"')[1].split("</table>")[0]
    assert 'data-validation="failed"' in validations
    assert "<code>age</code>" in validations
    assert "expect_column_values_to_be_between" in validations
    assert "age has 3 values above 90 &lt;b&gt;bold&lt;/b&gt;" in validations
    assert "unexpected: [91, 95, 99]" in validations
    assert "not trained with DP" not in page  # no model on this version's edges
    assert "no model recorded in its lineage" in page


def test_report_page_is_the_stored_html(client, catalog):
    rid = catalog.reports("adult_synth@1")[0]["id"]
    response = client.get(f"/reports/{rid}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text == catalog.report_html(rid)
    assert 'id="scorecard"' in response.text


def test_api_lists_every_version_as_json(client, catalog):
    response = client.get("/api/datasets")
    assert response.headers["content-type"] == "application/json"
    assert response.json() == [i.to_dict() for i in catalog.list(all_versions=True)]
    assert {d["name"] + "@" + str(d["version"]) for d in response.json()} == {
        "adult@1",
        "census@1",
        "adult_synth@1",
        "adult_synth@2",
        "adult_aug@1",
    }


# ----------------------------------------------------------------- errors and safety
@pytest.mark.parametrize(
    "url",
    [
        "/datasets/adult/9",  # unknown version
        "/datasets/nope/1",  # unknown name
        "/datasets/adult/0",
        "/datasets/adult/1.0",
        "/datasets/adult/%C2%B2",  # "²": str.isdigit() says yes, int() says no
        "/datasets/adult/latest",
        "/datasets/adult",
        "/reports/99999",
        "/reports/abc",
        "/reports/1.5",
        "/reports/-1",
        "/nowhere",
    ],
)
def test_unknown_things_are_a_404_page(client, url):
    response = client.get(url)
    assert response.status_code == 404, url
    assert '<meta name="synthgen-page" content="not-found">' in response.text
    assert (
        response.headers["content-security-policy"] == SECURITY_HEADERS["Content-Security-Policy"]
    )


def test_unknown_dataset_404_says_why(client):
    assert "has no version 9; its versions are [1]" in client.get("/datasets/adult/9").text
    assert "is not in the catalog" in client.get("/datasets/nope/1").text


TRAVERSALS = [
    "/reports/..%2F..%2Fetc%2Fpasswd",
    "/reports/..%2F..%2Fsecret.txt",
    "/reports/%2e%2e%2f%2e%2e%2fsecret.txt",
    "/datasets/../../etc/passwd/1",
    "/datasets/%2e%2e/1",
    "/datasets/..%2F..%2Fsecret.txt/1",
    "/datasets/adult/..%2F1",
    "/static/../x",
    "/static/..%2F..%2Fsecret.txt",
    "/..%2F..%2Fsecret.txt",
]


@pytest.fixture()
def file_reads(monkeypatch, catalog):
    """Record every file the process opens through Python and every storage read."""
    opened: list[str] = []
    real_open, real_io_open, real_os_open = builtins.open, io.open, os.open

    def spy(real):
        def wrapper(file, *args, **kwargs):
            opened.append(str(file))
            return real(file, *args, **kwargs)

        return wrapper

    monkeypatch.setattr(builtins, "open", spy(real_open))
    monkeypatch.setattr(io, "open", spy(real_io_open))
    monkeypatch.setattr(os, "open", spy(real_os_open))
    for method in ("read_bytes", "read_table"):
        original = getattr(catalog.storage, method)
        monkeypatch.setattr(catalog.storage, method, spy(original))
    return opened


def test_file_spy_sees_a_report_read(client, file_reads, catalog):
    """The spy below is not vacuous: serving a stored report reads through it."""
    rid = catalog.reports("adult_synth@1")[0]["id"]
    assert client.get(f"/reports/{rid}").status_code == 200
    assert any("reports" in path for path in file_reads), file_reads


@pytest.mark.parametrize("url", TRAVERSALS)
def test_path_traversal_is_a_404_and_reads_no_file(client, file_reads, catalog, url):
    secret = Path(catalog.url.split("///", 1)[1]).parent / "secret.txt"
    secret.write_text("TOPSECRET")
    file_reads.clear()
    response = client.get(url)
    assert response.status_code == 404, url
    assert "TOPSECRET" not in response.text and "root:" not in response.text
    assert file_reads == [], file_reads


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
@pytest.mark.parametrize("url", ["/", "/datasets/adult/1", "/reports/1", "/api/datasets", "/x"])
def test_every_other_method_is_405(client, catalog, method, url):
    before = [i.to_dict() for i in catalog.list()]
    response = client.request(method, url, content=b"{}")
    assert response.status_code == 405, (method, url)
    assert response.headers["allow"] == "GET, HEAD"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert [i.to_dict() for i in catalog.list()] == before


def test_head_is_allowed_like_get(client):
    response = client.head("/datasets/adult/1")
    assert response.status_code == 200 and response.content == b""
    assert response.headers["referrer-policy"] == "no-referrer"


def test_security_headers_on_every_response(client):
    for url in ("/", "/datasets/adult/1", "/reports/1", "/api/datasets", "/missing"):
        headers = client.get(url).headers
        assert headers["content-security-policy"] == (
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
            "script-src 'unsafe-inline'"
        )
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"


def test_user_text_is_escaped(tmp_path):
    with Catalog(f"sqlite:///{tmp_path}/c.db", storage=tmp_path / "store") as cat:
        cat.export(frame(0), "notes", description=f"evil {XSS} & co", tags=["t1"])
        cat.export(frame(1), "notes_child", parents=["notes"], description=XSS)
        app = TestClient(create_app(cat))
        detail = app.get("/datasets/notes/1").text
        child = app.get("/datasets/notes_child/1").text
        index = app.get("/").text
    assert XSS not in detail and XSS not in child and XSS not in index
    assert "evil &lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in detail
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in child


# ----------------------------------------------------------------- serve() and the CLI
@pytest.fixture()
def no_run(monkeypatch):
    """uvicorn.Server.run records its sockets and returns at once."""
    import uvicorn

    calls: list[tuple] = []

    def run(self, sockets=None):
        calls.append((sockets, sockets[0].getsockname()))

    monkeypatch.setattr(uvicorn.Server, "run", run)
    return calls


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "example.org", "::"])
def test_serve_refuses_a_non_loopback_host(tmp_path, no_run, host):
    with pytest.raises(ConfigError) as err:
        serve(f"sqlite:///{tmp_path}/c.db", host=host)
    assert f"--host {host} is not a loopback address" in str(err.value)
    assert "--allow-remote" in str(err.value)
    assert no_run == [] and not (tmp_path / "c.db").exists()


def test_serve_prints_the_url_and_runs_uvicorn(catalog, no_run, capsys):
    serve(catalog.url, host="127.0.0.1", port=0)
    ((sockets, (_, port)),) = no_run
    assert capsys.readouterr().out.startswith(
        f"synthgen catalog (read-only): http://127.0.0.1:{port}/"
    )
    assert sockets[0].fileno() == -1  # closed after the server stopped


def test_serve_allows_remote_only_when_asked(catalog, no_run, capsys):
    serve(catalog.url, host="0.0.0.0", port=0, allow_remote=True)
    assert len(no_run) == 1
    assert "has no login" in capsys.readouterr().err


def test_serve_does_not_create_a_missing_catalog(tmp_path, no_run):
    with pytest.raises(ConfigError, match=r"there is no catalog database at .*missing\.db"):
        serve(f"sqlite:///{tmp_path}/missing.db")
    assert not (tmp_path / "missing.db").exists() and no_run == []


def test_serve_reports_a_taken_port(catalog, no_run):
    taken = bind("127.0.0.1", 0)
    taken.listen()
    try:
        with pytest.raises(ConfigError, match=r"cannot listen on 127.0.0.1:\d+ .*--port"):
            serve(catalog.url, port=taken.getsockname()[1])
    finally:
        taken.close()
    with pytest.raises(ConfigError, match="--port 70000 must be an integer"):
        serve(catalog.url, port=70000)


def cli_app() -> typer.Typer:
    app = typer.Typer()
    sub = typer.Typer()
    register(sub)
    app.add_typer(sub, name="catalog")
    return app


def test_cli_serve_command(catalog, no_run):
    runner = CliRunner()
    done = runner.invoke(cli_app(), ["catalog", "serve", "--catalog", catalog.url, "--port", "0"])
    assert done.exit_code == 0, done.output
    assert "synthgen catalog (read-only): http://127.0.0.1:" in done.stdout
    refused = runner.invoke(
        cli_app(), ["catalog", "serve", "--catalog", catalog.url, "--host", "0.0.0.0"]
    )
    assert refused.exit_code == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: --host 0.0.0.0 is not a loopback")
    assert "--allow-remote" in lines[0]
    remote = runner.invoke(
        cli_app(),
        [
            "catalog",
            "serve",
            "--catalog",
            catalog.url,
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--allow-remote",
        ],
    )
    assert remote.exit_code == 0, remote.output
    assert len(no_run) == 2


# ----------------------------------------------------------------- a real server and browser
@pytest.fixture(scope="module")
def live_url(catalog):
    import uvicorn

    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(
        uvicorn.Config(create_app(catalog), log_level="warning", lifespan="off")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def raw_get(base: str, path: str) -> tuple[int, bytes]:
    """GET with the path sent byte for byte (no client-side normalisation of '..')."""
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_live_server_answers_traversal_with_404(live_url, catalog):
    secret = Path(catalog.url.split("///", 1)[1]).parent / "secret.txt"
    secret.write_text("TOPSECRET")
    assert raw_get(live_url, "/")[0] == 200
    for path in TRAVERSALS + ["/datasets/adult/../../../secret.txt", "/reports/1/../../x"]:
        status, body = raw_get(live_url, path)
        assert status == 404, path
        assert b"TOPSECRET" not in body and b"root:" not in body


def test_pages_render_in_headless_chromium_under_the_csp(live_url, catalog, tmp_path):
    dom = dump_dom(f"{live_url}/", tmp_path / "p1")
    assert 'id="datasets"' in dom and 'data-ref="adult_synth@2"' in dom
    assert 'data-validation="failed"' in dom
    rid = catalog.reports("adult_synth@1")[0]["id"]
    report = dump_dom(f"{live_url}/reports/{rid}", tmp_path / "p2")
    assert 'data-ready="yes"' in report  # the report's own script ran under the CSP
    assert int(report.split('data-cards="')[1].split('"')[0]) >= 4
    errors = re.search(r'<pre id="js-errors"[^>]*>(.*?)</pre>', report, re.S)
    assert errors is not None and errors.group(1).strip() == ""
    detail = dump_dom(f"{live_url}/datasets/adult_synth/1", tmp_path / "p3")
    assert '<h1 data-ref="adult_synth@1">' in detail
