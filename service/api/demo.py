"""GET /: the demo page, plain HTML, JavaScript and CSS from service/static/ (no build step).

The page and its assets hold no data, so they are served without the API key (a browser cannot
send a header on navigation); every API call the page makes carries the key the user types in.
They are left out of the OpenAPI schema: they are not part of the API.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"

router = APIRouter(include_in_schema=False)
router.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


@router.api_route("/", methods=["GET", "HEAD"])
async def demo_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")
