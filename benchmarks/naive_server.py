"""The naive reference server: one plain FastAPI endpoint that decodes, runs ONNX Runtime and encodes per
request: no queue, no batching, no limits, no metrics. What the service is measured against.

`python -m benchmarks.naive_server --card engines/polyp.json --host 127.0.0.1 --port 8001`
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import Body, FastAPI, Response

from benchmarks.raw import segment_png, session_for
from modelcard.card import load_card


def create_app(card_path: str) -> FastAPI:
    card = load_card(card_path)
    session = session_for(card)
    app = FastAPI()

    @app.get("/ready")
    def ready() -> dict:
        return {"model": card.name}

    @app.post("/segment")
    def segment(data: bytes = Body(..., media_type="image/jpeg")) -> Response:
        """A plain blocking endpoint: FastAPI runs it in its thread pool, requests run side by side."""
        return Response(segment_png(session, card, data), media_type="image/png")

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--card", required=True, help="Model card (JSON) of the model to serve.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    uvicorn.run(create_app(args.card), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
