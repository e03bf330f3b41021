"""ASGI entrypoint: ``uvicorn api_gateway.entrypoints.asgi:app``."""

from api_gateway.bootstrap import http_app
from service_kit import aws

aws.answer_fast()  # a person waits on each call: a 503 within seconds when AWS cannot be reached
app = http_app()
# uvicorn ends by re-raising SIGTERM, so exit handlers do not run; shutdown handlers do.
app.router.add_event_handler("shutdown", aws.write_call_counts)
