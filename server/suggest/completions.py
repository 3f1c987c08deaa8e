"""OpenAI-compatible `/v1/completions` and `/v1/models` for signed-in accounts (the API itself:
`server.suggest.openai_api`).

The signed-in account is the engine's owner key: its share of the model is capped (429 beyond), and
its requests count against the same per-user rate as the editor's suggestions.
"""

from __future__ import annotations

import math

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from server.auth.sessions import signed_in
from server.services import services
from server.suggest.openai_api import CompletionBody, complete, error_response, model_list, to_engine
from streaming.params import GenerationRequest


async def completions(request: Request) -> Response:
    """Signed-in users only, under the same per-user rate as the editor's suggestions."""
    account = signed_in(request)
    engine = services(request).engine
    limiter = services(request).suggestion_limiter
    wait = await limiter.take(account.username)
    if wait > 0:
        services(request).metrics.refused("suggestions")  # the editor's limit: one budget for both
        response = error_response(429, "too many requests; slow down", "rate_limit_exceeded")
        response.headers["retry-after"] = str(math.ceil(wait))
        return response
    return await complete(
        request, engine, services(request).model_name, lambda payload: _web(payload, account.username)
    )



def _web(payload: object, username: str) -> tuple[CompletionBody, GenerationRequest]:
    """A signed-in account's request: its `user` names one of the account's sessions; Cowrite's
    extension fields are ignored (only `serve-engine` takes them, under its token)."""
    body = CompletionBody.model_validate(payload)
    return body, to_engine(body, f"openai:{username}:{body.user}" if body.user else None, username)


async def models(request: Request) -> JSONResponse:
    signed_in(request)
    return model_list(services(request).model)


routes = [
    Route("/v1/completions", completions, methods=["POST"]),
    Route("/v1/models", models),
]
