"""``WS /ws/jobs/{job_id}``: a job's metrics, log, state and parameter changes, streamed; changes requested back.

The server sends JSON messages, each with a ``type``:

=============  =====================================================================================
``state``      the job (as ``GET /train/{job_id}``), first and whenever its state or progress moves
``metrics``    ``{"rows": [...]}``: logger dumps (as ``GET /train/{job_id}/metrics``), the history first
``log``        ``{"lines": [...]}``: log lines (as ``GET /train/{job_id}/log``), the history first
``param_ack``  ``{"change": {...}}``: a requested change (as ``GET /train/{job_id}/params``), when it is
               stored (``applied`` null) and again when the job took it or refused it
``error``      ``{"field": ..., "detail": ...}``: a refused request (nothing stored) or a protocol error
=============  =====================================================================================

A page that connects late gets the whole history before anything new. The client sends
``{"type": "set_params", "name": ..., "value": ...}`` (an ``admin`` token) to change a parameter at the job's next
rollout boundary, as ``POST /train/{job_id}/params`` does.

**Authentication.** Reading needs a ``read`` token and changing an ``admin`` one, as over HTTP. A script sends
``Authorization: Bearer <token>`` with the handshake; a browser, which cannot set headers on a WebSocket, sends
``{"type": "auth", "token": ...}`` as its first message, within :data:`AUTH_TIMEOUT_S`. The token is never taken
from the URL (it would land in logs and histories). The ``Origin`` and ``Host`` checks of every request
(:mod:`.guards`) run before the handshake, so another site's page cannot open the socket. A connection without a
valid token is closed with code 1008 after an ``error`` message.

**Bounds.** Messages from the client of at most :data:`MAX_MESSAGE_BYTES`; at most :data:`MAX_CONNECTIONS` open
sockets per worker (more are closed with 1013, "try again later"); the database is polled every
:data:`POLL_S` seconds per socket, for the rows after the last one sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from fitness_weights_api.job_live import ParamRefusedError
from fitness_weights_api.job_store import FINAL_STATES, UnknownJobError
from fitness_weights_api.jobs import JobManager
from fitness_weights_api.schemas import JobResponse, ParamChangeRequest, ParamChangeResponse
from fitness_weights_api.tokens import TokenRecord, TokenStore, role_allows
from fitness_weights_env.errors import FieldError

__all__ = ["AUTH_TIMEOUT_S", "MAX_CONNECTIONS", "MAX_MESSAGE_BYTES", "POLL_S", "add_live_socket"]

AUTH_TIMEOUT_S = 10.0
"""How long a connection without an ``Authorization`` header may take to send its ``auth`` message."""
MAX_MESSAGE_BYTES = 4096
"""The largest message a client may send."""
MAX_CONNECTIONS = 100
"""Open sockets per worker."""
POLL_S = 0.25
"""How often a socket reads the job database for news."""
_POLICY_VIOLATION, _TRY_AGAIN_LATER = 1008, 1013


class _RefusedError(Exception):
    """A message the socket answers with an ``error`` (and, when ``close``, closes on)."""

    def __init__(self, field: str, detail: str, close: bool = False) -> None:
        super().__init__(detail)
        self.field, self.detail, self.close = field, detail, close


def _bearer(websocket: WebSocket) -> str | None:
    header = websocket.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def _receive_json(websocket: WebSocket) -> dict[str, Any]:
    text = await websocket.receive_text()
    if len(text.encode()) > MAX_MESSAGE_BYTES:
        raise _RefusedError("message", f"must be at most {MAX_MESSAGE_BYTES} bytes", close=True)
    try:
        message = json.loads(text)
    except ValueError:
        raise _RefusedError("message", "must be a JSON object") from None
    if not isinstance(message, dict) or not isinstance(message.get("type"), str):
        raise _RefusedError("type", "every message must be a JSON object with a 'type'")
    return message


class _JobStream:
    """One socket's view of one job: what it has sent, and what is new in the database."""

    def __init__(self, websocket: WebSocket, jobs: JobManager, job_id: str, token: TokenRecord) -> None:
        self.websocket, self.jobs, self.job_id, self.token = websocket, jobs, job_id, token
        self.metrics_seq = self.log_seq = 0
        self.changes: dict[int, dict[str, Any]] = {}
        self.state: dict[str, Any] | None = None
        self.send_lock = asyncio.Lock()

    async def send(self, message: dict[str, Any]) -> None:
        async with self.send_lock:
            await self.websocket.send_text(json.dumps(message, default=str))

    def _news(self) -> list[dict[str, Any]]:
        """Every message of what changed since the last call, in this order: state, changes, metrics, log."""
        messages: list[dict[str, Any]] = []
        state = JobResponse.build(self.jobs.get(self.job_id)).model_dump(mode="json")
        if state != self.state:
            self.state = state
            messages.append({"type": "state", "job": state})
        for change in self.jobs.live.changes(self.job_id):
            data = ParamChangeResponse.build(change).model_dump(mode="json")
            if self.changes.get(change.seq) != data:
                self.changes[change.seq] = data
                messages.append({"type": "param_ack", "change": data})
        rows = self.jobs.live.metrics(self.job_id, self.metrics_seq)
        if rows:
            self.metrics_seq = rows[-1].seq
            messages.append({"type": "metrics", "rows": [row.to_dict() for row in rows]})
        lines = self.jobs.live.log(self.job_id, self.log_seq)
        if lines:
            self.log_seq = lines[-1].seq
            messages.append({"type": "log", "lines": [line.to_dict() for line in lines]})
        return messages

    async def follow(self) -> None:
        """Send the history, then what is new, until the job has ended and everything of it was sent."""
        while True:
            for message in await asyncio.to_thread(self._news):
                await self.send(message)
            if self.state is not None and self.state["state"] in FINAL_STATES:
                return
            await asyncio.sleep(POLL_S)

    async def serve_requests(self) -> None:
        """Take ``set_params`` requests until the client goes."""
        while True:
            try:
                message = await _receive_json(self.websocket)
                if message["type"] != "set_params":
                    raise _RefusedError("type", "must be 'set_params' (after 'auth')")
                if not role_allows(self.token.role, "admin"):
                    raise _RefusedError(
                        "token", f"set_params needs a token of role 'admin'; this one is '{self.token.role}'"
                    )
                await self._set_params(message)
            except _RefusedError as refused:
                await self.send({"type": "error", "field": refused.field, "detail": refused.detail})
                if refused.close:
                    await self.websocket.close(_POLICY_VIOLATION)
                    return

    async def _set_params(self, message: dict[str, Any]) -> None:
        fields = {key: value for key, value in message.items() if key != "type"}
        try:
            request = ParamChangeRequest(**fields)
        except ValidationError as err:
            first = err.errors()[0]
            field = str(first["loc"][0]) if first["loc"] else "message"
            raise _RefusedError(
                field if field in ParamChangeRequest.model_fields else "message", first["msg"]
            ) from None
        who = f"{self.token.name} ({self.token.token_id})"
        try:
            change = await asyncio.to_thread(self.jobs.set_param, self.job_id, request.name, request.value, who)
        except FieldError as err:
            raise _RefusedError(err.field, err.reason) from None
        except ParamRefusedError as err:
            raise _RefusedError("job", str(err)) from None
        data = ParamChangeResponse.build(change).model_dump(mode="json")
        await self.send({"type": "param_ack", "change": data})


def add_live_socket(app: FastAPI, jobs: JobManager, tokens: TokenStore) -> None:
    """Add ``WS /ws/jobs/{job_id}`` (module docstring) to ``app``."""
    open_sockets = 0

    async def authenticate(websocket: WebSocket) -> TokenRecord:
        token = _bearer(websocket)
        if token is None:
            try:
                message = await asyncio.wait_for(_receive_json(websocket), AUTH_TIMEOUT_S)
            except asyncio.TimeoutError:
                reason = f"send {{'type': 'auth', 'token': ...}} within {AUTH_TIMEOUT_S:g} s"
                raise _RefusedError("token", reason, close=True) from None
            if message["type"] != "auth" or not isinstance(message.get("token"), str):
                raise _RefusedError(
                    "token", "the first message must be {'type': 'auth', 'token': <a read token>}", True
                )
            token = message["token"]
        record = await asyncio.to_thread(tokens.verify, token)
        if record is None:
            raise _RefusedError("token", "the bearer token is unknown or revoked", close=True)
        return record

    @app.websocket("/ws/jobs/{job_id}")
    async def job_socket(websocket: WebSocket, job_id: str) -> None:
        nonlocal open_sockets
        await websocket.accept()
        if open_sockets >= MAX_CONNECTIONS:
            await websocket.close(_TRY_AGAIN_LATER)
            return
        open_sockets += 1
        stream = None
        try:
            token = await authenticate(websocket)
            try:
                await asyncio.to_thread(jobs.get, job_id)
            except (FieldError, UnknownJobError):
                raise _RefusedError("job_id", "unknown job", close=True) from None
            stream = _JobStream(websocket, jobs, job_id, token)
            requests = asyncio.create_task(stream.serve_requests())
            tasks = {asyncio.create_task(stream.follow()), requests}
            try:  # until the client goes (serve_requests ends); a job that ended stops follow() alone
                while tasks:
                    done, tasks = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                    failed = [task.exception() is not None for task in done]  # retrieved: no "never retrieved"
                    if requests in done or any(failed):
                        return
            finally:
                for task in tasks:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, WebSocketDisconnect, RuntimeError):
                        await task
        except _RefusedError as refused:
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                await websocket.send_text(
                    json.dumps({"type": "error", "field": refused.field, "detail": refused.detail})
                )
                await websocket.close(_POLICY_VIOLATION)
        except WebSocketDisconnect:
            pass
        finally:
            open_sockets -= 1
