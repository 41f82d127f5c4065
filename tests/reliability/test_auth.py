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


def v2_infer_body(card) -> dict:
    """An Open Inference Protocol request: one grey image as a binary tensor, labels back as binary."""
    pixels = bytes(card.input.height * card.input.width * 3)
    header = json.dumps({"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1, *card.input_size, 3],
                                     "parameters": {"binary_data_size": len(pixels)}}],
                         "outputs": [{"name": "labels", "parameters": {"binary_data": True}}]}).encode()
    return {"content": header + pixels, "headers": {"Inference-Header-Content-Length": str(len(header))}}


def operations(client: httpx.Client, card) -> list[tuple[str, str, dict]]:
    """(method, concrete path, request keyword arguments) for every operation in the schema."""
    spec = client.get("/openapi.json").json()
    found = []
    for template, methods in spec["paths"].items():
        path = template.replace("{name}", card.name).replace("{version}", "1")
        for method in methods:
            extra = {}
            if path.startswith("/v2/") and method == "post":
                extra = v2_infer_body(card) if path.endswith("/infer") else {}
            elif method == "post":  # one image: the raw body /segment takes, or the JSON list /segment/batch takes
                batch = path.endswith("/batch")
                encoded = [base64.b64encode(small_png()).decode()]
                body = json.dumps({"images": encoded}).encode() if batch else small_png()
                extra = {"content": body, "headers": {"Content-Type": "application/json" if batch else "image/png"}}
            found.append((method.upper(), path, extra))
    return found


def refused_for_the_key(response: httpx.Response) -> bool:
    """A 401 with the error body of its API: `{"error": {"code": "unauthorized"}}`, or v2's `{"error": "..."}`."""
    error = response.json()["error"]
    return response.status_code == 401 and (error["code"] == "unauthorized" if isinstance(error, dict)
                                            else "API key" in error)


# With the key, these answer as the server's mode has them (model control "none"): the guard let them through.
KEYED_STATUS = {"/v1/models/{name}/load": 409, "/v1/models/{name}/unload": 409,
                "/v2/repository/models/{name}/load": 409, "/v2/repository/models/{name}/unload": 409}


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
        card = cards[sorted(cards)[0]]
        probes = PROBES | ({"/v2/health/live", "/v2/health/ready"} if open_probes else set())
        guarded = [op for op in operations(client, card) if not (open_probes and op[1] in probes)]
        assert {path for _, path, _ in guarded} >= {"/segment", "/v1/models", f"/v2/models/{card.name}/infer"}
        for method, path, extra in guarded:
            refusals = [call(client, method, path, extra, {})]
            refusals += [call(client, method, path, extra, {"X-API-Key": wrong}) for wrong in WRONG_KEYS]
            refusals += [call(client, method, path, extra, {"Authorization": f"Bearer {wrong}"})
                         for wrong in WRONG_KEYS]
            for response in refusals:
                assert refused_for_the_key(response), f"{method} {path}: {response.status_code} {response.text}"
                assert response.headers["WWW-Authenticate"] == "Bearer"
            expected = KEYED_STATUS.get(path.replace(card.name, "{name}"), 200)
            for auth in ({"X-API-Key": KEY}, {"Authorization": f"Bearer {KEY}"}):
                accepted = call(client, method, path, extra, auth)
                assert accepted.status_code == expected, f"{method} {path} with the key: {accepted.text[:200]}"
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
    state = SimpleNamespace(settings=settings)
    guard = api_key_guard()
    with pytest.raises(ServiceError) as refused:
        asyncio.run(guard(state, bearer=None, header_key="wrong"))
    assert refused.value.status == 401
    asyncio.run(guard(state, bearer=HTTPAuthorizationCredentials(scheme="Bearer", credentials=KEY), header_key=None))
    assert compared == [(b"wrong", KEY.encode()), (KEY.encode(), KEY.encode())]
