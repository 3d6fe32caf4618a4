"""The HTTP API: a FastAPI app over :class:`~fitness_weights_api.service.WeightService`.

Run it with ``fitness-weights serve`` (uvicorn, ``--workers N``), or build it with :func:`create_app`. Every
worker process reads the same :class:`~fitness_weights_api.settings.ServiceSettings` (the ``FITNESS_WEIGHTS_*``
variables) and so shares the model registry and the job database; an activation made through any worker is
served by every worker from its next request on. The OpenAPI document is at ``/openapi.json``, the docs at
``/docs``.

======  ==============================  =====  ====================================================================
method  path                            token  answer
======  ==============================  =====  ====================================================================
POST    ``/optimize_weights``           (1)    run the active policy on a trainee; the matrices it ends with
POST    ``/predict_weights``            (1)    one forward pass of the prediction heads, with a confidence
POST    ``/train``                      admin  start a training job (202); its model registers when it succeeds
GET     ``/train``                      read   the latest jobs
GET     ``/train/{job_id}``             read   a job's state and progress
DELETE  ``/train/{job_id}``             admin  cancel a job
GET     ``/train/{job_id}/metrics``     read   a job's logged metrics, one row per logger dump (``?after=seq``)
GET     ``/train/{job_id}/log``         read   a job's log lines (``?after=seq``)
GET     ``/train/{job_id}/params``      read   the parameter changes requested for a job, and what became of them
POST    ``/train/{job_id}/params``      admin  change a parameter at the job's next rollout boundary (202)
GET     ``/train/{job_id}/weights``     read   the matrices the job's latest checkpoint predicts for a held-out trainee
POST    ``/train/{job_id}/weights``     read   ... for a trainee given as in ``/predict_weights``
GET     ``/ui``                                the training dashboard (an open page; what it shows needs a token)
WS      ``/ws/jobs/{job_id}``           read   a job's state, metrics, log and changes, streamed; ``set_params`` (admin)
GET     ``/studies``                    read   the tuning studies of the service home, with their best trials
GET     ``/studies/{study}``            read   one study's trials: states, values, curves, the jobs they became
GET     ``/models``                     read   the registered versions and the active one
POST    ``/models/{version}/activate``  admin  make a version the active one (atomic, every worker)
GET     ``/catalog``                           qualities, subjects, exercises and metrics, in matrix order
GET     ``/health``                            liveness, the active and the served version, the answering worker
GET     ``/metrics``                    read   request counts and latencies, Prometheus text format
======  ==============================  =====  ====================================================================

Optimize and predict run the active version through the kernel of the env it was trained on (its manifest's
``env_id``, ``FitnessWeights-v0`` or ``FitnessWeights-v1``; the answer's ``env_id`` says which); ``POST /train``
takes the ``env_id`` to train in, and the job registers its model with it.

(1) none, or ``read`` with ``FITNESS_WEIGHTS_REQUIRE_TOKEN=1``. A token (:mod:`.tokens`) travels as
``Authorization: Bearer <token>``; an ``admin`` token allows what a ``read`` one does.

Before any route runs, a request to a ``Host`` not in ``FITNESS_WEIGHTS_ALLOWED_HOSTS`` gets a 400, a cross-origin
one (an ``Origin`` other than the service) a 403 (:mod:`.auth`), and a body larger than
``FITNESS_WEIGHTS_MAX_BODY_BYTES`` a 413, from its ``Content-Length`` or as soon as more arrives, before it is
parsed.

Errors: a request the schema refuses, or one naming an unknown subject or quality, gets a 422 whose ``detail``
lists each invalid field (``loc``) with a message that names it; the input is not echoed. 401: no token, or an
unknown or revoked one (the message says how to make one when the service has none); 403: the token's role does
not allow it. 404: unknown job or version. 409: the active model (or a job's checkpoint) cannot predict (an
``MlpPolicy``; no checkpoint yet), or the version is refused (stored in the legacy SB3 format). 429: the job queue
is full. 503: no model is active yet, or none that loads. Anything else is a 500 that says only that: the
traceback goes to the server's log. No answer carries a path, a process id or a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator
from importlib import metadata
from typing import Annotated, Any

import anyio.to_thread
from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from fitness_weights_api.auth import Guard
from fitness_weights_api.dashboard import add_dashboard_routes
from fitness_weights_api.docs import add_docs_routes
from fitness_weights_api.guards import BodyLimitMiddleware, HostOriginMiddleware
from fitness_weights_api.job_config import JobConfig
from fitness_weights_api.job_live import MAX_READ, ParamRefusedError
from fitness_weights_api.job_store import QueueFullError, UnknownJobError
from fitness_weights_api.job_weights import HELD_OUT_TRAINEES, JobWeights, NoCheckpointWeightsError, held_out_trainee
from fitness_weights_api.jobs import JobManager
from fitness_weights_api.live_socket import add_live_socket
from fitness_weights_api.metrics import CONTENT_TYPE_LATEST, MetricsMiddleware, RequestMetrics
from fitness_weights_api.registry import ModelRefusedError, ModelVersion, RegistryError, UnknownVersionError
from fitness_weights_api.schemas import (
    CatalogResponse,
    ErrorResponse,
    HealthResponse,
    JobResponse,
    JobWeightsResponse,
    LogLineResponse,
    MetricsRowResponse,
    ModelListResponse,
    OptimizeRequest,
    OptimizeResponse,
    ParamChangeRequest,
    ParamChangeResponse,
    PredictRequest,
    PredictResponse,
    StudyDetailResponse,
    StudyResponse,
    TrainRequest,
    ValidationErrorResponse,
    field_error_detail,
    validation_details,
)
from fitness_weights_api.service import NoActiveModelError, WeightService
from fitness_weights_api.settings import ServiceSettings
from fitness_weights_api.studies import UnknownStudyError, list_studies, study_detail
from fitness_weights_api.supervision import exit_with_supervisor
from fitness_weights_api.tokens import TokenRecord
from fitness_weights_api.weights import NoPredictionHeadsError
from fitness_weights_env.errors import FieldError
from sb3_ext.config import MAX_SEED

__all__ = ["JOB_REFRESH_S", "create_app"]

JOB_REFRESH_S = 1.0
"""Seconds between two refreshes of the job manager (start queued jobs, settle dead ones) in each worker."""

logger = logging.getLogger("fitness_weights_api")

After = Annotated[int, Query(ge=0, description="Only rows after this seq (the last one the caller has).")]
Limit = Annotated[int, Query(ge=1, le=MAX_READ, description="At most this many rows.")]
JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="A job id (32 lowercase hex digits).")]
Version = Annotated[str, Path(pattern=r"^v[1-9][0-9]{0,17}$", description="A model version: v1, v2, ...")]
StudyName = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="A study name (its folder under studies/).")
]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorResponse, "description": "No bearer token, or an unknown or revoked one."},
    403: {"model": ErrorResponse, "description": "The token's role does not allow this."},
    404: {"model": ErrorResponse, "description": "Unknown job, model version or study."},
    409: {
        "model": ErrorResponse,
        "description": "The model cannot do this (no prediction heads; no checkpoint yet; a refused version).",
    },
    429: {"model": ErrorResponse, "description": "The job queue is full."},
    503: {"model": ErrorResponse, "description": "No model version is active (or none loads)."},
}
_COMMON_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorResponse, "description": "The Host header names a host this service does not answer to."},
    403: _ERRORS[403] | {"description": "A cross-origin request, or a token whose role does not allow this."},
    413: {"model": ErrorResponse, "description": "The body is larger than the service takes (checked before reading)."},
    422: {"model": ValidationErrorResponse, "description": "An invalid field (named)."},
}


# Errors answered with a message of their own (no internals, no echoed input), by status code.
_STATUS: dict[type[Exception], int] = {
    UnknownJobError: 404,
    UnknownVersionError: 404,
    UnknownStudyError: 404,
    NoPredictionHeadsError: 409,
    NoCheckpointWeightsError: 409,
    ModelRefusedError: 409,
    RegistryError: 409,
    ParamRefusedError: 409,
    QueueFullError: 429,
    NoActiveModelError: 503,
}


def _public_message(exc: Exception) -> str:
    """What the client is told of an error of :data:`_STATUS`."""
    if isinstance(exc, UnknownVersionError):
        return f"unknown version; {exc.known}"
    if isinstance(exc, UnknownJobError):
        return "unknown job"
    if isinstance(exc, ModelRefusedError):
        return f"the version is refused: {exc.reason}"
    if isinstance(exc, RegistryError):  # a damaged registry (a model file missing): the details are in the log
        return "the registry cannot do this: it is damaged (the server's log says how)"
    if isinstance(exc, NoPredictionHeadsError):
        return f"the active model cannot predict: {exc}"
    return str(exc)


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: _ERRORS[code] for code in codes}


def _json(body: BaseModel) -> Response:
    """A response already validated by its model, serialized by pydantic (not validated and encoded again)."""
    return Response(body.model_dump_json(), media_type="application/json")


def _version() -> str:
    try:
        return metadata.version("fitness-weights")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "unknown"


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """The API over the registry and the jobs of ``settings`` (read from the environment when ``None``).

    Used by uvicorn as a factory: ``uvicorn fitness_weights_api.app:create_app --factory``.
    """
    exit_with_supervisor()  # a worker of serve --workers N exits with its supervisor
    settings = ServiceSettings.from_env() if settings is None else settings
    registry = settings.open_registry()
    jobs = settings.open_jobs(registry)
    service = WeightService(registry, jobs, device=settings.device, inference=settings.inference)
    guard = Guard(settings.open_tokens())
    admin_token = guard.requires("admin")  # a route that needs the token's record takes it as a parameter
    read, admin = [guard.requires("read")], [admin_token]
    open_or_read = guard.optional(settings.require_token, "read")  # optimize and predict
    metrics = RequestMetrics()
    catalog = CatalogResponse.build()
    package_version = _version()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.torch_threads:
            import torch as th

            th.set_num_threads(settings.torch_threads)
        with contextlib.suppress(NoActiveModelError):
            await asyncio.to_thread(service.model)  # load the active model before the first request
        app.state.optimize_limiter = anyio.CapacityLimiter(1)
        refresher = asyncio.create_task(_refresh_jobs(jobs))
        try:
            yield
        finally:
            refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await refresher

    app = FastAPI(
        title="FitnessWeights",
        version=package_version,
        summary="Optimize and predict personalized physical-training weights (CQ and QX), and train the models.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        responses=_COMMON_ERRORS,
    )
    app.state.service = service
    app.state.settings = settings
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(WorkerHeaderMiddleware)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(HostOriginMiddleware, allowed_hosts=settings.allowed_hosts)  # outermost: runs first
    _add_error_handlers(app)
    add_docs_routes(app)

    @app.post(
        "/optimize_weights",
        response_model=OptimizeResponse,
        responses=_errors(401, 409, 503),
        dependencies=open_or_read,
        tags=["weights"],
    )
    async def optimize_weights(request: OptimizeRequest) -> Response:
        """Run the active policy on the trainee for ``optimization_steps`` steps: the matrices it ends with."""
        profile = request.to_profile()

        def run() -> Response:
            served = service.optimize(
                profile, request.optimization_steps, seed=request.seed, deterministic=request.deterministic
            )
            return _json(OptimizeResponse.build(request.user_id, served.model_version, served.result))

        # One optimization at a time per worker, in a thread (the event loop keeps answering): they are
        # CPU-bound Python loops, and several at once in one process only fight over the GIL (benchmarks/RESULTS.md).
        return await anyio.to_thread.run_sync(run, limiter=app.state.optimize_limiter)

    @app.post(
        "/predict_weights",
        response_model=PredictResponse,
        responses=_errors(401, 409, 503),
        dependencies=open_or_read,
        tags=["weights"],
    )
    async def predict_weights(request: PredictRequest) -> Response:
        """Predict the optimized matrices in one forward pass, with a confidence in [0, 1]."""
        # About a millisecond of work: answered on the event loop, without a thread hop (optimize takes one)
        served = service.predict(request.to_profile(), seed=request.seed)
        return _json(PredictResponse.build(request.user_id, served.model_version, served.result))

    @app.post(
        "/train",
        status_code=202,
        response_model=JobResponse,
        responses=_errors(401, 429),
        dependencies=admin,
        tags=["training"],
    )
    def train(request: TrainRequest) -> JobResponse:
        """Start a training job in its own process; poll ``GET /train/{job_id}`` for its progress."""
        config = JobConfig(**request.model_dump(), device=settings.train_device)
        return JobResponse.build(service.train(config))

    @app.get("/train", response_model=list[JobResponse], responses=_errors(401), dependencies=read, tags=["training"])
    def list_jobs(limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[JobResponse]:
        """The latest ``limit`` jobs, newest first."""
        jobs.refresh()
        return [JobResponse.build(job) for job in jobs.list(limit)]

    @app.get(
        "/train/{job_id}", response_model=JobResponse, responses=_errors(401, 404), dependencies=read, tags=["training"]
    )
    def get_job(job_id: JobId) -> JobResponse:
        """A job's state and progress (timesteps done, last mean reward, its model once succeeded)."""
        jobs.refresh()
        return JobResponse.build(jobs.get(job_id))

    @app.delete(
        "/train/{job_id}",
        response_model=JobResponse,
        responses=_errors(401, 404),
        dependencies=admin,
        tags=["training"],
    )
    def cancel_job(job_id: JobId) -> JobResponse:
        """Cancel a job (a running one is stopped; a finished one is returned unchanged)."""
        return JobResponse.build(jobs.cancel(job_id))

    @app.get(
        "/train/{job_id}/metrics",
        response_model=list[MetricsRowResponse],
        responses=_errors(401, 404),
        dependencies=read,
        tags=["training"],
    )
    def job_metrics(job_id: JobId, after: After = 0, limit: Limit = MAX_READ) -> list[MetricsRowResponse]:
        """A job's logged metrics, oldest first: each logger dump's step and the scalars TensorBoard gets."""
        return [MetricsRowResponse(**row.to_dict()) for row in jobs.metrics(job_id, after, limit)]

    @app.get(
        "/train/{job_id}/log",
        response_model=list[LogLineResponse],
        responses=_errors(401, 404),
        dependencies=read,
        tags=["training"],
    )
    def job_log(job_id: JobId, after: After = 0, limit: Limit = MAX_READ) -> list[LogLineResponse]:
        """A job's log lines, oldest first (paths cut to their last component)."""
        return [LogLineResponse(**line.to_dict()) for line in jobs.log(job_id, after, limit)]

    @app.get(
        "/train/{job_id}/params",
        response_model=list[ParamChangeResponse],
        responses=_errors(401, 404),
        dependencies=read,
        tags=["training"],
    )
    def job_params(job_id: JobId) -> list[ParamChangeResponse]:
        """The parameter changes requested for a job, oldest first: who asked, when, and when each took effect."""
        return [ParamChangeResponse.build(change) for change in jobs.params(job_id)]

    @app.post(
        "/train/{job_id}/params",
        status_code=202,
        response_model=ParamChangeResponse,
        responses=_errors(401, 404, 409),
        tags=["training"],
    )
    def set_job_param(
        job_id: JobId,
        request: ParamChangeRequest,
        token: TokenRecord = admin_token,  # a default, not Annotated: the guard is local, annotations are strings
    ) -> ParamChangeResponse:
        """Change a queued or running job's parameter at its next rollout boundary (``GET .../params`` follows it).

        An invalid value is refused (422, naming the field) and stores nothing; a job that has ended answers 409.
        """
        who = f"{token.name} ({token.token_id})"
        return ParamChangeResponse.build(jobs.set_param(job_id, request.name, request.value, requested_by=who))

    checkpoints = JobWeights(jobs, settings.max_model_bytes)

    @app.get(
        "/train/{job_id}/weights",
        response_model=JobWeightsResponse,
        responses=_errors(401, 404, 409),
        dependencies=read,
        tags=["training"],
    )
    def job_weights(
        job_id: JobId,
        trainee: Annotated[
            int, Query(ge=0, lt=HELD_OUT_TRAINEES, description="The evaluation's held-out trainee, by position.")
        ] = 0,
        seed: Annotated[int, Query(ge=0, le=MAX_SEED, description="Seed of the starting state, as in predict.")] = 0,
    ) -> Response:
        """The CQ and QX matrices the job's latest checkpoint predicts for a held-out trainee (the heatmaps)."""
        weights = checkpoints.predict(job_id, held_out_trainee(trainee), seed)
        return _json(JobWeightsResponse.build(job_id, f"held-out {trainee}", weights))

    @app.post(
        "/train/{job_id}/weights",
        response_model=JobWeightsResponse,
        responses=_errors(401, 404, 409),
        dependencies=read,
        tags=["training"],
    )
    def job_weights_for(job_id: JobId, request: PredictRequest) -> Response:
        """The same, for a trainee typed in (the fields of ``POST /predict_weights``)."""
        weights = checkpoints.predict(job_id, request.to_profile(), request.seed)
        return _json(JobWeightsResponse.build(job_id, request.user_id, weights))

    add_live_socket(app, jobs, guard.tokens)
    add_dashboard_routes(app)

    @app.get("/studies", response_model=list[StudyResponse], responses=_errors(401), dependencies=read, tags=["tuning"])
    def list_studies_route() -> list[StudyResponse]:
        """The tuning studies of the service home (``fitness-weights tune``), the most recently changed first."""
        return [StudyResponse(**study) for study in list_studies(settings.home)]

    @app.get(
        "/studies/{study}",
        response_model=StudyDetailResponse,
        responses=_errors(401, 404),
        dependencies=read,
        tags=["tuning"],
    )
    def get_study(study: StudyName) -> StudyDetailResponse:
        """A study of the service home with its latest trials: each one's curve, and the job it became."""
        return StudyDetailResponse(**study_detail(settings.home, study))

    @app.get("/models", response_model=ModelListResponse, responses=_errors(401), dependencies=read, tags=["models"])
    def list_models() -> ModelListResponse:
        """Every registered model version, oldest first, and the active one."""
        versions = registry.versions()
        active = next((v.version for v in versions if v.active), None)
        return ModelListResponse(active=active, models=versions)

    @app.post(
        "/models/{version}/activate",
        response_model=ModelVersion,
        responses=_errors(401, 404, 409),
        dependencies=admin,
        tags=["models"],
    )
    def activate_model(version: Version) -> ModelVersion:
        """Make ``version`` the active model, atomically; every worker serves it from its next request.

        Activating the version already active changes nothing. A version stored in the legacy SB3 format is refused
        (409): it would run code when loaded.
        """
        return registry.activate(version)

    @app.get("/catalog", response_model=CatalogResponse, tags=["catalog"])
    def get_catalog() -> CatalogResponse:
        """Qualities, subjects (CQ rows), exercises (QX columns) and performance metrics, with both names."""
        return catalog

    @app.get("/health", response_model=HealthResponse, tags=["service"])
    def health() -> HealthResponse:
        """Liveness: the registry's active version, the version this worker serves, and the worker that answered."""
        active, _ = registry.active_token()
        with contextlib.suppress(NoActiveModelError):
            service.model()  # loads the active version if it changed, or records why it cannot
        return HealthResponse(
            status="degraded" if service.problem else "ok",
            active_model=active,
            served_model=service.served_version(),
            runtime=service.served_runtime(),
            problem=service.problem,
            worker=WorkerHeaderMiddleware.worker_id,
            version=package_version,
        )

    @app.get(
        "/metrics",
        response_class=Response,
        responses={
            200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format."},
            **_errors(401),
        },
        dependencies=read,
        tags=["service"],
    )
    def get_metrics() -> Response:
        """Request counts and latencies by route and status (Prometheus text format)."""
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    return app


class WorkerHeaderMiddleware:
    """Adds ``X-Worker-Id`` (a random id of the answering worker process, not its pid) to every response.

    A WebSocket's handshake answer carries it too, so that a client knows which worker streams to it.
    """

    worker_id = secrets.token_hex(4)  # drawn again in every worker process (spawned, so it imports this anew)

    def __init__(self, app: Any) -> None:
        self.app = app
        self.header = (b"x-worker-id", self.worker_id.encode())

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """Pass the request on; add the header to the response's start, or to the WebSocket's accept."""
        start = {"http": "http.response.start", "websocket": "websocket.accept"}.get(scope["type"])
        if start is None:
            await self.app(scope, receive, send)
            return

        async def send_with_header(message: dict[str, Any]) -> None:
            if message["type"] == start:
                message["headers"] = [*message.get("headers", []), self.header]
            await send(message)

        await self.app(scope, receive, send_with_header)


async def _refresh_jobs(jobs: JobManager) -> None:
    """Start queued jobs and settle finished ones, every :data:`JOB_REFRESH_S` seconds, until cancelled."""
    while True:
        try:
            await asyncio.to_thread(jobs.refresh)
        except Exception:  # a locked or busy database: the next round retries
            logger.exception("refreshing the training jobs failed")
        await asyncio.sleep(JOB_REFRESH_S)


def _add_error_handlers(app: FastAPI) -> None:
    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"detail": message}, status_code=status)

    def field_error(field: str, message: str) -> JSONResponse:
        return JSONResponse({"detail": [field_error_detail(["body", field], message)]}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": validation_details(exc.errors())}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI could not read the body (not UTF-8, not JSON): a bad field like others
            return JSONResponse(
                {"detail": [field_error_detail(["body"], "could not be read as JSON")]}, status_code=422
            )
        return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(FieldError)
    async def invalid_field(request: Request, exc: FieldError) -> JSONResponse:
        return field_error(exc.field, exc.reason)  # the reason never quotes the input (str(exc) may)

    async def plain_error(request: Request, exc: Exception) -> JSONResponse:
        if type(exc) is RegistryError:
            logger.error("%s %s: %s", request.method, request.url.path, exc)
        return error(_STATUS[type(exc)], _public_message(exc))

    for exc_type in _STATUS:
        app.add_exception_handler(exc_type, plain_error)

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return error(500, "internal server error")
