"""With an API key set, every operation in the OpenAPI schema refuses a missing or wrong key with a JSON 401
(probes and metrics too once they are configured closed), and the key is compared in constant time."""

from __future__ import annotations

import asyncio
import base64
import hmac
import io
import json
from types import SimpleNamespace

import httpx
import pytest
from fastapi.security import HTTPAuthorizationCredentials
from PIL import Image

from service.api.auth import api_key_guard
from service.errors import ServiceError
from service.settings import AuthSettings, Settings

KEY = "s3cret-key-for-tests"
WRONG_KEYS = ("wrong", KEY[:-1], KEY + "x", KEY.upper())
PUBLIC_PATHS = ("/", "/static/demo.js", "/docs", "/openapi.json")  # hold no data; a browser cannot send a header
PROBES = {"/healthz", "/readyz", "/metrics"}


def small_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (120, 80, 60)).save(buffer, format="PNG")
    return buffer.getvalue()


def operations(client: httpx.Client, model: str) -> list[tuple[str, str, dict]]:
    """(method, concrete path, request keyword arguments) for every operation in the schema."""
    spec = client.get("/openapi.json").json()
    found = []
    for template, methods in spec["paths"].items():
        path = template.replace("{name}", model)
        for method in methods:
            extra = {}
            if method == "post":  # one image: the raw body /segment takes, or the JSON list /segment/batch takes
                batch = path.endswith("/batch")
                body = json.dumps({"images": [base64.b64encode(small_png()).decode()]}).encode() if batch else small_png()
                extra = {"content": body, "headers": {"Content-Type": "application/json" if batch else "image/png"}}
            found.append((method.upper(), path, extra))
    return found


def call(client: httpx.Client, method: str, path: str, extra: dict, auth: dict[str, str]) -> httpx.Response:
    return client.request(method, path, content=extra.get("content"), headers={**extra.get("headers", {}), **auth})


@pytest.mark.parametrize("open_probes", [True, False], ids=["probes-open", "probes-closed"])
def test_every_operation_refuses_missing_and_wrong_keys(service_factory, cards, open_probes):
    flag = str(open_probes).lower()
    server = service_factory(env={"SEG_AUTH__API_KEY": KEY, "SEG_AUTH__OPEN_PROBES": flag,
                                  "SEG_AUTH__OPEN_METRICS": flag},
                             wait_ready=False)
    server.wait_until(lambda response: response.status_code == 200, headers={"X-API-Key": KEY})
    with httpx.Client(base_url=server.url, timeout=60) as client:
        guarded = [op for op in operations(client, sorted(cards)[0]) if not (open_probes and op[1] in PROBES)]
        assert {path for _, path, _ in guarded} >= {"/segment", "/v1/models"}
        for method, path, extra in guarded:
            refusals = [call(client, method, path, extra, {})]
            refusals += [call(client, method, path, extra, {"X-API-Key": wrong}) for wrong in WRONG_KEYS]
            refusals += [call(client, method, path, extra, {"Authorization": f"Bearer {wrong}"}) for wrong in WRONG_KEYS]
            for response in refusals:
                assert response.status_code == 401, f"{method} {path}: {response.status_code}"
                assert response.json()["error"]["code"] == "unauthorized"
                assert response.headers["WWW-Authenticate"] == "Bearer"
            for auth in ({"X-API-Key": KEY}, {"Authorization": f"Bearer {KEY}"}):
                accepted = call(client, method, path, extra, auth)
                assert accepted.status_code == 200, f"{method} {path} with the key: {accepted.text[:200]}"
        for path in PUBLIC_PATHS:
            assert client.get(path).status_code == 200, path


def test_the_key_is_compared_with_hmac_compare_digest(monkeypatch):
    compared = []
    constant_time = hmac.compare_digest

    def spy(given, expected):
        compared.append((given, expected))
        return constant_time(given, expected)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    settings = Settings(auth=AuthSettings(api_key=KEY))
    request = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(service=SimpleNamespace(settings=settings))))
    guard = api_key_guard()
    with pytest.raises(ServiceError) as refused:
        asyncio.run(guard(request, bearer=None, header_key="wrong"))
    assert refused.value.status == 401
    asyncio.run(guard(request, bearer=HTTPAuthorizationCredentials(scheme="Bearer", credentials=KEY), header_key=None))
    assert compared == [(b"wrong", KEY.encode()), (KEY.encode(), KEY.encode())]
