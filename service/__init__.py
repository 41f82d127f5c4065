"""The segmentation service: `python -m service`, or `service.app.create_app(settings)` for an ASGI server."""
