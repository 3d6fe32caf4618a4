"""Who may call what: the bearer tokens each route needs.

Routes declare the role they need with :meth:`Guard.requires` (a FastAPI dependency, so the OpenAPI document
lists the bearer scheme and Swagger UI's "Authorize" button works). The token travels only in the
``Authorization: Bearer <token>`` header, never in a cookie or the query string, so a request a browser sends
cross-site on its own (a form post, an image) never carries one: every mutation needs a token, so none can be
forged that way (CSRF). The ``Host`` and ``Origin`` checks that run before any route are in :mod:`.guards`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from fitness_weights_api.tokens import ROLES, TokenRecord, TokenStore, role_allows

__all__ = ["CREATE_TOKEN_HINT", "Guard"]

CREATE_TOKEN_HINT = "create one with 'fitness-weights tokens create --role admin' on the server"

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="A token made with `fitness-weights tokens create --role read|admin`.",
)


class Guard:
    """The bearer-token checks of one app over one :class:`~fitness_weights_api.tokens.TokenStore`."""

    def __init__(self, tokens: TokenStore) -> None:
        self.tokens = tokens

    def requires(self, role: str) -> Any:
        """A dependency that lets a request through only with a valid token allowing ``role``.

        401 (with ``WWW-Authenticate: Bearer``) without a token or with an unknown or revoked one, saying how to
        make one when the service has none; 403 with a token of a lesser role.
        """
        if role not in ROLES:
            raise ValueError(f"role must be one of {list(ROLES)}, got {role!r}")

        async def check(
            credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
        ) -> TokenRecord:
            # A few microseconds of SQLite through a kept connection: on the event loop, no thread hop.
            record = None if credentials is None else self.tokens.verify(credentials.credentials)
            if record is None:
                if not self.tokens.has_valid(role):
                    message = (
                        f"this needs a bearer token of role '{role}' and the service has none: {CREATE_TOKEN_HINT}"
                    )
                elif credentials is None:
                    message = f"this needs a bearer token of role '{role}': send 'Authorization: Bearer <token>'"
                else:
                    message = "the bearer token is unknown or revoked"
                raise HTTPException(401, message, headers={"WWW-Authenticate": "Bearer"})
            if not role_allows(record.role, role):
                raise HTTPException(403, f"this needs a token of role '{role}'; this token's role is '{record.role}'")
            return record

        return Depends(check)

    def optional(self, required: bool, role: str = "read") -> Sequence[Any]:
        """The dependencies of a route that needs ``role`` only when ``required``."""
        return [self.requires(role)] if required else []
