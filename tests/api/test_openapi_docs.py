"""OpenAPI (issue 12 item 13) and offline docs (item 12): every route documents its response with a model and
an example, write routes an example body; /metrics is text/plain; /docs and /redoc load nothing from another
host."""

from __future__ import annotations

import re
from typing import Any

from position_order_service.app import create_app
from position_order_service.config import Settings

from .conftest import Api

WRITE = ("post", "put", "patch")


def _schema() -> dict[str, Any]:
    return create_app(Settings(_env_file=None)).openapi()  # type: ignore[call-arg]


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        schema = spec["components"]["schemas"][name]
    return schema


def _has_example(spec: dict[str, Any], media: dict[str, Any]) -> bool:
    if media.get("example") is not None or media.get("examples"):
        return True
    schema = _resolve(spec, media.get("schema", {}))
    return bool(schema.get("examples") or schema.get("example"))


def test_every_route_has_a_response_model_and_examples() -> None:
    spec = _schema()
    problems: list[str] = []
    for path, item in spec["paths"].items():
        for method, op in item.items():
            name = f"{method.upper()} {path}"
            ok = {c: r for c, r in op["responses"].items() if c.startswith("2")}
            if not ok:
                problems.append(f"{name}: no 2xx response")
                continue
            for code, resp in ok.items():
                if code == "204":
                    continue
                content = resp.get("content") or {}
                if not content:
                    problems.append(f"{name} {code}: no content")
                for mtype, media in content.items():
                    schema = _resolve(spec, media.get("schema") or {})
                    if not schema or schema == {"type": "object"} or (
                        schema.get("type") == "object" and not schema.get("properties")
                        and not schema.get("additionalProperties")
                    ):  # fmt: skip
                        problems.append(f"{name} {code} {mtype}: empty response schema")
                    if not _has_example(spec, media):
                        problems.append(f"{name} {code} {mtype}: no response example")
            body = op.get("requestBody")
            if method in WRITE and body:
                for mtype, media in body["content"].items():
                    if not _has_example(spec, media):
                        problems.append(f"{name}: no request example ({mtype})")
    assert problems == [], "\n".join(problems)


def test_metrics_is_documented_as_text_plain() -> None:
    spec = _schema()
    content = spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(content) == ["text/plain"]


async def test_docs_and_redoc_serve_every_asset_themselves(api: Api) -> None:
    for page in ("/docs", "/redoc"):
        r = await api.client.get(page)
        assert r.status_code == 200, page
        refs = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)["']""", r.text)
        refs += re.findall(r"""(?:url|specUrl|spec-url)\s*:\s*["']([^"']+)["']""", r.text)
        external = [u for u in refs if re.match(r"(?i)^(https?:)?//", u)]
        assert external == [], f"{page} loads {external}"
        assets = [u for u in refs if u.startswith("/")]
        assert assets, page
        for url in assets:
            got = await api.client.get(url)
            assert got.status_code == 200 and got.content, f"{page}: {url} -> {got.status_code}"
        # the scripts themselves fetch nothing else from a CDN at run time (fonts, workers)
        for url in assets:
            if url.endswith(".js") or url.endswith(".css"):
                text = (await api.client.get(url)).text
                assert "cdn.jsdelivr.net" not in text and "fonts.googleapis.com" not in text, url
