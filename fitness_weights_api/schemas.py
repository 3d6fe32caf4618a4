"""The HTTP API's request and response bodies (pydantic v2), and how a request becomes a trainee profile.

The trainee fields are the original API's: ``user_id``, ``age``, ``gender``, ``fitness_level``,
``current_qualities``, ``target_subjects``, optional ``subject_scores`` and ``performance_metrics``, and
``optimization_steps``. Names of subjects and qualities may be English or Chinese, in any case. What the
schema can say (types, ranges, lengths) it says, so the OpenAPI document describes it; what needs the
catalog (a subject name, a missing quality) is checked by :meth:`TraineeRequest.to_profile`, which raises
:class:`RequestFieldError` naming the request field.
"""

from __future__ import annotations

import difflib
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from fitness_weights_api.jobs import MAX_EVAL_TRAINEES, MAX_N_ENVS, MAX_SEED, POLICIES, PRESET_NAMES, Job
from fitness_weights_api.registry import ModelVersion
from fitness_weights_api.weights import MAX_OPTIMIZATION_STEPS, WeightsResult
from fitness_weights_env import (
    CATALOG,
    METRIC_NAMES,
    ProfileError,
    TraineeProfile,
    UnknownNameError,
    typical_metrics,
    typical_subject_scores,
)
from fitness_weights_env.layout import AGE_MAX, AGE_MIN, GENDERS

__all__ = [
    "CatalogResponse",
    "ErrorResponse",
    "HealthResponse",
    "JobResponse",
    "ModelListResponse",
    "OptimizeRequest",
    "OptimizeResponse",
    "PredictRequest",
    "PredictResponse",
    "RequestFieldError",
    "TrainRequest",
    "TraineeRequest",
    "ValidationErrorResponse",
    "field_error_detail",
    "validation_details",
]

UnitFloat = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]


def _names(items: Any) -> list[str]:
    return [name for item in items for name in (item.name_en, item.name_zh)]


# Names as the OpenAPI document lists them (English and Chinese). The server also takes any case and spacing,
# and answers an unknown name with a 422 that suggests close matches (see to_profile), so the check is not
# pydantic's: a Literal of 186 names would make an unreadable error.
SubjectName = Annotated[str, Field(min_length=1, max_length=200, json_schema_extra={"enum": _names(CATALOG.subjects)})]
QualityName = Annotated[str, Field(min_length=1, max_length=200, json_schema_extra={"enum": _names(CATALOG.qualities)})]
MetricName = Annotated[str, Field(min_length=1, max_length=200, json_schema_extra={"enum": list(METRIC_NAMES)})]

QUALITY_LABELS = [quality.name_en for quality in CATALOG.qualities]
SUBJECT_LABELS = [subject.name_en for subject in CATALOG.subjects]
METRIC_LABELS = list(METRIC_NAMES)

# Profile fields as the API names them.
_API_FIELDS = {"qualities": "current_qualities", "targets": "target_subjects"}


class RequestFieldError(ValueError):
    """A request field that the schema accepts but the catalog or the profile rules refuse.

    Args:
        field: The request field, as the API names it (``target_subjects``, ``current_qualities``, ...).
        message: What is wrong, for the client.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _named_values(
    field: str, values: dict[str, float], kind: str, index: Any, labels: list[str], defaults: np.ndarray | None
) -> np.ndarray:
    """Values given by name (``index`` resolves a name) as an array; unnamed ones from ``defaults`` (or missing)."""
    size = len(labels)
    array = np.full(size, np.nan) if defaults is None else np.array(defaults, dtype=np.float64)
    seen: dict[int, str] = {}
    for name, value in values.items():
        try:
            i = index(name)
        except UnknownNameError as err:
            raise RequestFieldError(field, str(err)) from None
        if i in seen:
            raise RequestFieldError(field, f"{kind} {name!r} is given twice (also as {seen[i]!r})")
        seen[i] = name
        array[i] = value
    if defaults is None and len(seen) < size:
        missing = [labels[i] for i in range(size) if i not in seen]
        raise RequestFieldError(field, f"missing {kind} values: {', '.join(missing)} (all {size} are needed)")
    return array


def _metric_index(name: str) -> int:
    key = name.strip().casefold()
    for i, metric in enumerate(METRIC_NAMES):
        if metric == key:
            return i
    close = difflib.get_close_matches(key, METRIC_NAMES, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    raise UnknownNameError(f"unknown metric {name!r}{hint}; the metrics are {list(METRIC_NAMES)}")


class TraineeRequest(BaseModel):
    """A trainee, with the original API's fields."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "user_id": "trainee-42",
                    "age": 23,
                    "gender": "male",
                    "fitness_level": 0.6,
                    "current_qualities": {
                        "endurance": 0.55,
                        "flexibility": 0.5,
                        "agility": 0.6,
                        "power": 0.65,
                        "strength": 0.6,
                    },
                    "target_subjects": ["3000 m run", "单杠引体向上"],
                }
            ]
        },
    )

    user_id: str = Field(min_length=1, max_length=128, description="The trainee's id, echoed in the answer.")
    age: int = Field(ge=AGE_MIN, le=AGE_MAX, description="Age in whole years.")
    gender: Literal[GENDERS] = Field(description="'male' or 'female'.")  # type: ignore[valid-type]
    fitness_level: UnitFloat = Field(description="Overall fitness in [0, 1].")
    current_qualities: dict[QualityName, UnitFloat] | Annotated[list[UnitFloat], Field(min_length=5, max_length=5)] = (
        Field(
            description="Level of each of the 5 qualities in [0, 1]: by name (English or Chinese), or a list in "
            "catalog order (endurance, flexibility, agility, power, strength)."
        )
    )
    target_subjects: list[SubjectName] = Field(
        min_length=1,
        max_length=CATALOG.n_subjects,
        json_schema_extra={"uniqueItems": True},
        description="One or more distinct target subjects, by English or Chinese name (see GET /catalog).",
    )
    subject_scores: (
        dict[SubjectName, UnitFloat]
        | Annotated[list[UnitFloat], Field(min_length=CATALOG.n_subjects, max_length=CATALOG.n_subjects)]
        | None
    ) = Field(
        default=None,
        description="Measured scores in [0, 1]: all 93 in catalog order, or some by subject name. Subjects not "
        "given get the population's typical score for the trainee's qualities.",
    )
    performance_metrics: (
        dict[MetricName, UnitFloat] | Annotated[list[UnitFloat], Field(min_length=4, max_length=4)] | None
    ) = Field(
        default=None,
        description="Recorded metrics in [0, 1] (recent_improvement, injury_risk, training_efficiency, "
        "consistency): all 4 in that order, or some by name. Metrics not given get the population's typical value.",
    )

    @classmethod
    def from_profile(cls, profile: TraineeProfile, user_id: str, **fields: Any) -> TraineeRequest:
        """The request for a profile, every field given; ``fields`` adds or replaces fields (``optimization_steps``)."""
        data = profile.to_dict()
        return cls(user_id=user_id, **{_API_FIELDS.get(name, name): value for name, value in data.items()} | fields)

    def to_profile(self) -> TraineeProfile:
        """The trainee as a :class:`~fitness_weights_env.TraineeProfile`.

        Raises:
            RequestFieldError: A field the catalog or the profile rules refuse (the error names it).
        """
        qualities = self.current_qualities
        if isinstance(qualities, dict):
            qualities = _named_values(
                "current_qualities", qualities, "quality", CATALOG.quality_index, QUALITY_LABELS, None
            )
        qualities = np.asarray(qualities, dtype=np.float64)
        scores: Any = self.subject_scores
        if scores is None:
            scores = typical_subject_scores(qualities)
        elif isinstance(scores, dict):
            typical = typical_subject_scores(qualities)
            scores = _named_values("subject_scores", scores, "subject", CATALOG.subject_index, SUBJECT_LABELS, typical)
        metrics: Any = self.performance_metrics
        if metrics is None:
            metrics = typical_metrics(self.fitness_level)
        elif isinstance(metrics, dict):
            typical = typical_metrics(self.fitness_level)
            metrics = _named_values("performance_metrics", metrics, "metric", _metric_index, METRIC_LABELS, typical)
        try:
            return TraineeProfile(
                age=self.age,
                gender=self.gender,
                fitness_level=self.fitness_level,
                qualities=qualities,
                subject_scores=scores,
                targets=self.target_subjects,
                performance_metrics=metrics,
            )
        except ProfileError as err:
            field = _API_FIELDS.get(err.field, err.field)
            raise RequestFieldError(field, str(err).removeprefix(f"{err.field}: ")) from None


class PredictRequest(TraineeRequest):
    """``POST /predict_weights``: a trainee."""


class OptimizeRequest(TraineeRequest):
    """``POST /optimize_weights``: a trainee and how to run the policy."""

    optimization_steps: int = Field(
        default=64, ge=1, le=MAX_OPTIMIZATION_STEPS, description="Policy steps to run (one episode is 64)."
    )
    seed: int = Field(
        default=0, ge=0, le=MAX_SEED, description="Seed of the initial matrices and of the sampled actions."
    )
    deterministic: bool = Field(
        default=False,
        description="The policy's most likely action at each step (true) instead of actions sampled with the seed "
        "(false, the default: the optimize outcome the predictions learn).",
    )


class _WeightsResponse(BaseModel):
    user_id: str
    model_version: str = Field(description="The registry version that answered.")
    cq_matrix: list[list[float]] = Field(description="93 x 5 subject x quality weights, rows summing to 1.")
    qx_matrix: list[list[float]] = Field(description="5 x 44 quality x exercise weights, rows summing to 1.")
    target_achievement_scores: dict[str, float] = Field(
        description="CQ[s] . qualities of each target subject (English name), as the environment computes it."
    )
    timestamp: datetime

    @staticmethod
    def _common(user_id: str, version: str, result: WeightsResult) -> dict[str, Any]:
        return {
            "user_id": user_id,
            "model_version": version,
            "cq_matrix": result.cq.tolist(),
            "qx_matrix": result.qx.tolist(),
            "target_achievement_scores": result.target_scores,
            "timestamp": datetime.now(timezone.utc),
        }


class OptimizeResponse(_WeightsResponse):
    """The matrices the policy ends with, and the environment's metrics there."""

    performance_metrics: dict[str, float] = Field(description="The 4 metrics at the end of the optimization.")
    optimization_steps: int

    @classmethod
    def build(cls, user_id: str, version: str, result: WeightsResult) -> OptimizeResponse:
        """The response for an :func:`~fitness_weights_api.weights.optimize_weights` result."""
        return cls(
            **cls._common(user_id, version, result),
            performance_metrics=result.performance_metrics or {},
            optimization_steps=result.steps,
        )


class PredictResponse(_WeightsResponse):
    """The predicted matrices, in one forward pass, with their confidence."""

    prediction_confidence: float = Field(ge=0.0, le=1.0, description="Higher means a smaller expected error.")

    @classmethod
    def build(cls, user_id: str, version: str, result: WeightsResult) -> PredictResponse:
        """The response for a :func:`~fitness_weights_api.weights.predict_weights` result."""
        return cls(**cls._common(user_id, version, result), prediction_confidence=result.confidence)


class TrainRequest(BaseModel):
    """``POST /train``: what a training job trains (see ``fitness_weights_api.TrainConfig``)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"timesteps": 200_000}]})

    timesteps: int = Field(ge=1, description="Environment steps to train for (at most the server's limit).")
    policy: Literal[POLICIES] = "AttnCQQXPolicy"  # type: ignore[valid-type]
    preset: Literal[PRESET_NAMES] = Field(default="cpu", description="Throughput preset.")  # type: ignore[valid-type]
    n_envs: int | None = Field(default=None, ge=1, le=MAX_N_ENVS, description="Parallel envs (default: preset's).")
    seed: int = Field(default=0, ge=0, le=MAX_SEED)
    learning_rate: float = Field(default=2e-3, gt=0.0, le=1.0, allow_inf_nan=False)
    eval_trainees: int = Field(default=50, ge=2, le=MAX_EVAL_TRAINEES, description="Held-out trainees.")
    activate: bool = Field(default=False, description="Make the model the active one when it is registered.")


class JobResponse(BaseModel):
    """A training job."""

    job_id: str
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    config: dict[str, Any]
    created: datetime
    started: datetime | None
    finished: datetime | None
    timesteps_done: int
    total_timesteps: int
    last_mean_reward: float | None
    has_checkpoint: bool = Field(description="Whether a checkpoint was saved (a failed job keeps its last one).")
    model_version: str | None = Field(description="The registered model, once succeeded.")
    error: str | None
    cancel_requested: bool

    @classmethod
    def build(cls, job: Job) -> JobResponse:
        """The response for a :class:`~fitness_weights_api.jobs.Job`."""
        data = job.to_dict()
        del data["pid"]
        data["has_checkpoint"] = data.pop("checkpoint") is not None
        return cls(**data)


class ModelListResponse(BaseModel):
    """Every registered version, oldest first, and the active one."""

    active: str | None
    models: list[ModelVersion]


class CatalogQuality(BaseModel):
    """A physical quality."""

    index: int
    name_en: str
    name_zh: str


class CatalogSubject(CatalogQuality):
    """A training or test subject (a row of CQ)."""

    category: str
    unit: str
    higher_is_better: bool
    loadings: list[float] = Field(description="Prior contribution of each quality.")


class CatalogExercise(CatalogQuality):
    """A training exercise (a column of QX)."""

    group: str
    loadings: list[float] = Field(description="How much it develops each quality.")


class CatalogResponse(BaseModel):
    """The domain: qualities, subjects, exercises and the performance metrics, in matrix order."""

    qualities: list[CatalogQuality]
    subjects: list[CatalogSubject]
    exercises: list[CatalogExercise]
    performance_metrics: list[str]

    @classmethod
    def build(cls) -> CatalogResponse:
        """The catalog shipped with ``fitness_weights_env``."""
        keep = {"index", "name_en", "name_zh", "category", "unit", "higher_is_better", "group", "loadings"}

        def fields(item: Any) -> dict[str, Any]:
            return {k: v for k, v in vars(item).items() if k in keep}

        return cls(
            qualities=[fields(q) for q in CATALOG.qualities],
            subjects=[fields(s) for s in CATALOG.subjects],
            exercises=[fields(e) for e in CATALOG.exercises],
            performance_metrics=list(METRIC_NAMES),
        )


class HealthResponse(BaseModel):
    """The worker that answered, and the model it serves."""

    status: Literal["ok"]
    active_model: str | None = Field(description="The registry's active version (None before the first).")
    worker_pid: int = Field(description="The process id of the worker that answered.")
    version: str = Field(description="The fitness-weights package version.")


class ErrorResponse(BaseModel):
    """An error: what went wrong, without internals."""

    detail: str


class FieldErrorDetail(BaseModel):
    """One invalid field."""

    loc: list[str | int] = Field(description="Where: ['body', field, ...], ['path', name] or ['query', name].")
    msg: str
    type: str


class ValidationErrorResponse(BaseModel):
    """A 422: every invalid field, each named."""

    detail: list[FieldErrorDetail]


def field_error_detail(loc: list[str | int], message: str, kind: str = "value_error") -> dict[str, Any]:
    """One :class:`FieldErrorDetail` as a dict; its message starts with the field's dotted path."""
    name = ".".join(str(part) for part in loc[1:]) or str(loc[0])
    return {"loc": loc, "msg": f"{name}: {message}", "type": kind}


def validation_details(errors: Any) -> list[dict[str, Any]]:
    """Pydantic's errors as :class:`FieldErrorDetail` dicts: union member tags dropped, the input not echoed.

    A field typed ``dict | list`` fails both ways; when one way failed only on the type, the other way's error
    is the one that says what is wrong, so that field's type errors are dropped.
    """
    type_errors = ("dict_type", "list_type")
    details = []
    for error in errors:
        loc = [part for part in error["loc"] if not (isinstance(part, str) and "[" in part)]
        details.append(field_error_detail(loc, error["msg"], error["type"]))
    with_value_errors = {tuple(d["loc"][:2]) for d in details if d["type"] not in type_errors}
    unique: dict[tuple[Any, ...], dict[str, Any]] = {}
    for detail in details:
        if detail["type"] in type_errors and tuple(detail["loc"][:2]) in with_value_errors:
            continue
        unique.setdefault((tuple(detail["loc"]), detail["msg"]), detail)
    return list(unique.values())
