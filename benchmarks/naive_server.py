"""The naive reference server: one plain FastAPI endpoint that decodes, runs ONNX Runtime and encodes per
request: no queue, no batching, no limits, no metrics. What the service is measured against.

`python -m benchmarks.naive_server --card engines/polyp.json --host 127.0.0.1 --port 8001`
"""

from __future__ import annotations

import argparse
import io

import numpy as np
import uvicorn
from fastapi import Body, FastAPI, Response
from PIL import Image

from benchmarks.raw import session_for
from modelcard.card import load_card
from modelcard.geometry import letterbox
from service.encoding import encode_png


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
        image = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
        canvas, placement = letterbox(image, card.input_size)
        labels = session.run([card.outputs.labels.name], {card.input.name: canvas[None]})[0][0]
        crop = labels[placement.top:placement.top + placement.height, placement.left:placement.left + placement.width]
        mask = np.asarray(Image.fromarray(crop).resize((image.shape[1], image.shape[0]), Image.Resampling.NEAREST))
        return Response(encode_png(mask, card.palette), media_type="image/png")

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
