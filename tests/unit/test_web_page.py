"""The web page's files as the API serves them, without servers (issue 26's page bullets).

- quality.js's table of flag sentences is worker/engine/quality.py's FLAGS, word for word
  and in the same order (the page cannot import Python; this keeps the two from drifting).
- The page's scripts are ES modules: app.js imports quality.js, and api/web.py serves the
  import with quality.js's content hash, so both are cached for a year under their hash
  and a change to quality.js changes app.js's hash too (the page then loads both anew).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from flask import Flask

from api import web
from api.app import create_app
from shared.contract.settings import load_settings
from worker.engine.quality import FLAGS

STATIC = Path(web.__file__).resolve().parent / "static"


@pytest.fixture
def app() -> Flask:
    return create_app(
        load_settings(
            {},
            redis_url="redis://127.0.0.1:1/0",
            s3_endpoint_url="http://127.0.0.1:1",
            review_below=0.7,
        )
    )


def test_the_page_says_each_flag_in_the_words_of_flags() -> None:
    source = (STATIC / "quality.js").read_text()
    block = re.search(r"export const FLAGS = (\{.*?\n\});", source, re.S)
    assert block, "quality.js has no `export const FLAGS = {...};` block"
    table = json.loads(block.group(1))
    assert list(table.items()) == list(FLAGS.items())


def test_app_js_imports_quality_js_by_its_content_hash(app: Flask) -> None:
    client = app.test_client()
    page = client.get("/").get_data(as_text=True)
    script = re.search(r'<script type="module" src="(/static/app\.js\?v=(\w+))"></script>', page)
    assert script, "app.js is linked as a module with its hash"

    quality = client.get("/static/quality.js")
    digest = web._digest(quality.get_data())
    app_js = client.get(script.group(1))
    assert app_js.status_code == 200
    assert "immutable" in app_js.headers["Cache-Control"]
    text = app_js.get_data(as_text=True)
    assert f'from "./quality.js?v={digest}"' in text
    assert 'from "./quality.js"' not in text
    # the hash in the page is that of app.js as served (with the versioned import)
    assert script.group(2) == web._digest(app_js.get_data())

    hashed = client.get(f"/static/quality.js?v={digest}")
    assert hashed.status_code == 200
    assert hashed.headers["Content-Type"].startswith("text/javascript")
    assert "immutable" in hashed.headers["Cache-Control"]
    assert client.get("/static/quality.js").headers["Cache-Control"] == "no-cache"


def test_a_change_to_an_imported_module_changes_its_importers_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(web, "STATIC_DIR", tmp_path)
    (tmp_path / "a.js").write_text(
        'import { b } from "./b.js";\nexport * from \'./c.js\';\nconst d = import("./d.js");\n'
        'import "./missing.js";\nimport x from "../up.js";\n'
    )
    (tmp_path / "b.js").write_text('import { a } from "./a.js";\nexport const b = 1;\n')
    (tmp_path / "c.js").write_text("export const c = 1;\n")
    (tmp_path / "d.js").write_text("export const d = 1;\n")

    served = (web.asset("a.js") or b"").decode()
    digest_b = web._digest(web.asset("b.js", ("a.js",)) or b"")
    digest_c = web._digest(b"export const c = 1;\n")
    assert f'from "./b.js?v={digest_b}"' in served
    assert f"from './c.js?v={digest_c}'" in served
    assert 'import("./d.js?v=' in served
    # what cannot be versioned is left as written: no such file, outside the folder
    assert 'import "./missing.js";' in served
    assert 'from "../up.js"' in served
    # the cycle back to a.js stays unversioned inside b.js
    assert 'from "./a.js";' in (web.asset("b.js", ("a.js",)) or b"").decode()

    before = web._digest(web.asset("a.js") or b"")
    (tmp_path / "c.js").write_text("export const c = 2;\n")
    assert web._digest(web.asset("a.js") or b"") != before
    # a file that is not a script is served as it is
    (tmp_path / "s.css").write_text('@import "./b.js";')
    assert web.asset("s.css") == b'@import "./b.js";'


def test_info_tells_the_page_the_review_threshold(app: Flask) -> None:
    body = app.test_client().get("/v1/info").get_json()
    assert body["review_below"] == 0.7


def test_the_score_option_is_in_the_advanced_options() -> None:
    page = (STATIC / "index.html").read_text()
    advanced = page[page.index('<details class="advanced"') : page.index("</details>")]
    assert '<select id="score" name="score"' in advanced
    assert re.search(r'<option value="basic">', advanced)
    assert re.search(r'<option value="full">[^<]*second model', advanced)


def test_each_module_is_one_instance_and_every_import_resolves() -> None:
    """The editor and review list are modules of their own (issue 27). A module imported
    under two different ``?v=`` URLs would run twice with separate state (http.js's API
    key would be set in one copy only), so every importer must name the same URL; each
    import names a file in api/static, and the imports form no cycle."""
    imports = re.compile(r"""\bfrom\s*["']\./([\w.-]+\.js)\?v=(\w+)["']""")
    urls: dict[str, set[str]] = {}
    graph: dict[str, set[str]] = {}
    for path in sorted(STATIC.glob("*.js")):
        source = path.read_text()
        written = set(re.findall(r"""\bfrom\s*["']\./([\w.-]+\.js)["']""", source))
        served = (web.asset(path.name) or b"").decode()
        found = imports.findall(served)
        assert {name for name, _ in found} == written, path.name
        for name, digest in found:
            assert (STATIC / name).is_file(), (path.name, name)
            urls.setdefault(name, set()).add(digest)
        graph[path.name] = written
    assert {"editor.js", "review.js", "http.js"} <= set(urls)
    assert all(len(digests) == 1 for digests in urls.values()), urls

    def visit(name: str, chain: tuple[str, ...]) -> None:
        assert name not in chain, (*chain, name)
        for child in graph.get(name, ()):
            visit(child, (*chain, name))

    visit("app.js", ())
    # app.js is the page's entry and stays its only script tag
    page = (STATIC / "index.html").read_text()
    assert re.findall(r"<script[^>]*>", page) == ['<script type="module" src="/static/app.js">']
