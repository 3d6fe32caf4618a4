"""The HTTP API's request and response bodies (pydantic v2), and how a request becomes a trainee profile.

The trainee fields are the original API's: ``user_id``, ``age``, ``gender``, ``fitness_level``,
``current_qualities``, ``target_subjects``, optional ``subject_scores`` and ``performance_metrics``, and
``optimization_steps``. Names of subjects and qualities may be English or Chinese, in any case. What the
schema can say (types, ranges, lengths) it says, so the OpenAPI document describes it; what needs the
catalog (a subject name, a missing quality) is checked by :meth:`TraineeRequest.to_profile`, which raises
:class:`~fitness_weights_env.errors.FieldError` naming the request field (its ``reason`` never quotes the
input; ``str(error)`` does, for a command-line user).

The request models are strict, with JSON's types: no bool, string or null for a number, no number or string
for a bool, no number for a string. A float field takes any number (``1`` as well as ``1.0``: JSON has one
number type), and for the same reason an integer field takes an integral ``23.0`` (but not ``23.5``).

Errors never repeat the request's input, so that a client can show them as they are: they name the field and
the position (``target_subjects: item 1 is an unknown subject; did you mean '3000 m run'?``,
``current_qualities.4.value: Input should be less than or equal to 1``), never the value or a name the
client made up. Suggestions come from the catalog. A misspelt top-level field is named when its name looks
like a field name (``favourite_colour: Extra inputs are not permitted``), and counted otherwise.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, model_validator
from pydantic_core import PydanticCustomError, PydanticKnownError
from typing_extensions import TypedDict

from fitness_weights_api.job_config import MAX_EVAL_ROLLOUTS
from fitness_weights_api.job_store import Job
from fitness_weights_api.job_weights import CheckpointWeights
from fitness_weights_api.model_format import ENV_IDS
from fitness_weights_api.registry import ModelVersion
from fitness_weights_api.weights import MAX_OPTIMIZATION_STEPS, WeightsResult
from fitness_weights_env import (
    CATALOG,
    METRIC_NAMES,
    FieldError,
    TraineeProfile,
    UnknownNameError,
    typical_metrics,
    typical_subject_scores,
)
from fitness_weights_env.layout import AGE_MAX, AGE_MIN, GENDERS
from sb3_ext.config import DEFAULT_LEARNING_RATE, MAX_EVAL_TRAINEES, MAX_N_ENVS, MAX_SEED, POLICIES
from sb3_ext.presets import PRESETS

__all__ = [
    "CatalogResponse",
    "ErrorResponse",
    "HealthResponse",
    "JobResponse",
    "JobWeightsResponse",
    "LogLineResponse",
    "MetricsRowResponse",
    "ModelListResponse",
    "OptimizeRequest",
    "OptimizeResponse",
    "ParamChangeRequest",
    "ParamChangeResponse",
    "PredictRequest",
    "PredictResponse",
    "StudyResponse",
    "TrainRequest",
    "TraineeRequest",
    "ValidationErrorResponse",
    "field_error_detail",
    "validation_details",
]

UnitFloat = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]

# What an error may repeat of a location: a field's name (lowercase, digits, underscores; short). A name the
# client sent that is not of this form (a dict key, an unknown field) is never repeated: nothing of it is.
_FIELD_NAME = re.compile(r"[a-z_][a-z0-9_]{0,39}")


def _whole(value: Any) -> Any:
    """An integral float (``23.0``) as an int: JSON has one number type. Anything else is left to strict validation."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


WholeNumber = Annotated[int, BeforeValidator(_whole)]
"""A strict integer (no bool, no string) that also takes an integral float."""


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
PRESET_NAMES = tuple(sorted(PRESETS))
"""The throughput presets a job may use."""

_API_FIELDS = {"qualities": "current_qualities", "targets": "target_subjects"}


class _Entry(TypedDict):
    """One ``name: value`` pair of a by-name field, validated at its position (an error never quotes the name)."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    value: UnitFloat


def _entries(size: int) -> Callable[[Any], Any]:
    def entries(value: Any) -> Any:
        if not isinstance(value, dict):
            raise PydanticKnownError("dict_type")
        if len(value) > size:
            raise PydanticKnownError(
                "too_long", {"field_type": "Dictionary", "max_length": size, "actual_length": len(value)}
            )
        return [{"name": name, "value": item} for name, item in value.items()]

    return entries


def _by_name(name: Any, size: int) -> Any:
    """Values by name (at most ``size``, one per catalog item): a JSON object, checked entry by entry.

    Validated as a list of ``{name, value}`` entries, so that an error's location is ``[field, position, "name"]``
    or ``[field, position, "value"]`` (pydantic would put the client's key there); kept and dumped as a dict, and
    described in the OpenAPI document as the object it is.
    """
    mapping = Annotated[dict[name, UnitFloat], Field(max_length=size)]
    return Annotated[
        list[_Entry],
        BeforeValidator(_entries(size), json_schema_input_type=mapping),
        AfterValidator(lambda entries: {entry["name"]: entry["value"] for entry in entries}),
        PlainSerializer(lambda values: values, return_type=mapping),
    ]


if TYPE_CHECKING:  # what a validated field holds (pydantic validates it as entries, see _by_name)
    QualityValues = dict[str, float]
    SubjectValues = dict[str, float]
    MetricValues = dict[str, float]
else:
    QualityValues = _by_name(QualityName, CATALOG.n_qualities)
    SubjectValues = _by_name(SubjectName, CATALOG.n_subjects)
    MetricValues = _by_name(MetricName, len(METRIC_NAMES))


@dataclass(frozen=True)
class _Kind:
    """The names of one kind of item (quality, subject or metric) and how a name finds its index.

    Attributes:
        kind: What an item is called in messages.
        index: A name's index; raises :class:`~fitness_weights_env.UnknownNameError` (quoting the name).
        labels: English names, in index order.
        choices: Every accepted spelling (English and Chinese), for suggestions.
    """

    kind: str
    index: Callable[[str], int]
    labels: list[str]
    choices: list[str]

    def resolve(self, field: str, where: str, name: str) -> int:
        """The index of ``name``, given at ``where`` (``"item 2"``) of ``field``.

        Raises:
            FieldError: The name is unknown; the reason suggests close catalog names.
        """
        try:
            return self.index(name)
        except UnknownNameError:
            display = {choice.casefold(): choice for choice in self.choices}
            close = difflib.get_close_matches(" ".join(name.split()).casefold(), list(display), n=5, cutoff=0.5)
            hint = f"; did you mean {', '.join(repr(display[c]) for c in close)}?" if close else ""
            known = f" (known: {', '.join(self.labels)})" if len(self.labels) <= 5 else ""
            raise FieldError(field, f"{where} is an unknown {self.kind}{known}{hint}", name) from None


def _metric_index(name: str) -> int:
    key = name.strip().casefold()
    for i, metric in enumerate(METRIC_NAMES):
        if metric == key:
            return i
    close = difflib.get_close_matches(key, METRIC_NAMES, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
    raise UnknownNameError("metric", f"unknown metric{hint}; the metrics are {list(METRIC_NAMES)}", value=name)


_QUALITIES = _Kind("quality", CATALOG.quality_index, QUALITY_LABELS, _names(CATALOG.qualities))
_SUBJECTS = _Kind("subject", CATALOG.subject_index, SUBJECT_LABELS, _names(CATALOG.subjects))
_METRICS = _Kind("metric", _metric_index, METRIC_LABELS, METRIC_LABELS)


def _named_values(field: str, values: dict[str, float], names: _Kind, defaults: np.ndarray | None) -> np.ndarray:
    """Values given by name as an array; unnamed ones from ``defaults`` (or all needed when ``None``)."""
    size = len(names.labels)
    array = np.full(size, np.nan) if defaults is None else np.array(defaults, dtype=np.float64)
    seen: dict[int, tuple[int, str]] = {}
    for position, (name, value) in enumerate(values.items()):
        i = names.resolve(field, f"entry {position}", name)
        if i in seen:
            first, other = seen[i]
            reason = f"entries {first} and {position} both give {names.kind} {names.labels[i]!r} (given twice)"
            raise FieldError(field, reason, [other, name])
        seen[i] = (position, name)
        array[i] = value
    if defaults is None and len(seen) < size:
        missing = [names.labels[i] for i in range(size) if i not in seen]
        raise FieldError(field, f"missing {names.kind} values: {', '.join(missing)} (all {size} are needed)")
    return array


def _target_indices(names: list[str]) -> list[int]:
    """The catalog indices of the target subjects, each checked at its position."""
    indices: list[int] = []
    for position, name in enumerate(names):
        index = _SUBJECTS.resolve("target_subjects", f"item {position}", name)
        if index in indices:
            label = SUBJECT_LABELS[index]
            reason = f"items {indices.index(index)} and {position} both name subject {label!r} (listed twice)"
            raise FieldError("target_subjects", reason)
        indices.append(index)
    return indices


class _Request(BaseModel):
    """A request body: strict JSON types, and no field but its own (see the module's docstring)."""

    model_config = ConfigDict(strict=True, extra="forbid")

    @model_validator(mode="before")
    @classmethod
    def _no_odd_field_names(cls, data: Any) -> Any:
        """Refuse an unknown field whose name an error could not repeat (pydantic's error would) by its position."""
        if isinstance(data, dict):
            for position, name in enumerate(data):
                if name not in cls.model_fields and not (isinstance(name, str) and _FIELD_NAME.fullmatch(name)):
                    raise PydanticCustomError(
                        "extra_forbidden",
                        "field {position} is not one of this request's fields, which are: {fields}",
                        {"position": position, "fields": ", ".join(cls.model_fields)},
                    )
        return data


class TraineeRequest(_Request):
    """A trainee, with the original API's fields."""

    model_config = ConfigDict(
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
    age: WholeNumber = Field(ge=AGE_MIN, le=AGE_MAX, description="Age in whole years.")
    # valid-type: pydantic takes the Literal of a tuple of names (GENDERS here, POLICIES and PRESET_NAMES below)
    gender: Literal[GENDERS] = Field(description="'male' or 'female'.")  # type: ignore[valid-type]
    fitness_level: UnitFloat = Field(description="Overall fitness in [0, 1].")
    current_qualities: QualityValues | Annotated[list[UnitFloat], Field(min_length=5, max_length=5)] = Field(
        description="Level of each of the 5 qualities in [0, 1]: by name (English or Chinese), or a list in "
        "catalog order (endurance, flexibility, agility, power, strength)."
    )
    target_subjects: list[SubjectName] = Field(
        min_length=1,
        max_length=CATALOG.n_subjects,
        json_schema_extra={"uniqueItems": True},
        description="One or more distinct target subjects, by English or Chinese name (see GET /catalog).",
    )
    subject_scores: (
        SubjectValues
        | Annotated[list[UnitFloat], Field(min_length=CATALOG.n_subjects, max_length=CATALOG.n_subjects)]
        | None
    ) = Field(
        default=None,
        description="Measured scores in [0, 1]: all 93 in catalog order, or some by subject name. Subjects not "
        "given get the population's typical score for the trainee's qualities.",
    )
    performance_metrics: MetricValues | Annotated[list[UnitFloat], Field(min_length=4, max_length=4)] | None = Field(
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
            FieldError: A field the catalog or the profile rules refuse (the error names it, and its
                ``reason`` names the position without quoting the input).
        """
        given = self.current_qualities
        named = _named_values("current_qualities", given, _QUALITIES, None) if isinstance(given, dict) else given
        qualities = np.asarray(named, dtype=np.float64)
        scores: Any = self.subject_scores
        if scores is None:
            scores = typical_subject_scores(qualities)
        elif isinstance(scores, dict):
            scores = _named_values("subject_scores", scores, _SUBJECTS, typical_subject_scores(qualities))
        metrics: Any = self.performance_metrics
        if metrics is None:
            metrics = typical_metrics(self.fitness_level)
        elif isinstance(metrics, dict):
            metrics = _named_values("performance_metrics", metrics, _METRICS, typical_metrics(self.fitness_level))
        targets = _target_indices(self.target_subjects)
        try:
            return TraineeProfile(
                age=self.age,
                gender=self.gender,
                fitness_level=self.fitness_level,
                qualities=qualities,
                subject_scores=scores,
                targets=tuple(targets),
                performance_metrics=metrics,
            )
        except FieldError as err:  # not reached by a validated request
            raise FieldError(_API_FIELDS.get(err.field, err.field), err.reason) from None


class PredictRequest(TraineeRequest):
    """``POST /predict_weights``: a trainee, and the seed of the state the prediction starts from."""

    seed: WholeNumber = Field(
        default=0,
        ge=0,
        le=MAX_SEED,
        description="Seed of the initial matrices: the network sees the env's starting observation for this seed.",
    )


class OptimizeRequest(TraineeRequest):
    """``POST /optimize_weights``: a trainee and how to run the policy."""

    optimization_steps: WholeNumber = Field(
        default=64, ge=1, le=MAX_OPTIMIZATION_STEPS, description="Policy steps to run (one episode is 64)."
    )
    seed: WholeNumber = Field(
        default=0, ge=0, le=MAX_SEED, description="Seed of the initial matrices and of the sampled actions."
    )
    deterministic: bool = Field(
        default=False,
        description="The policy's most likely action at each step (true) instead of actions sampled with the seed "
        "(false, the default: the optimize outcome the predictions learn).",
    )


class _Matrices(BaseModel):
    env_id: Literal[ENV_IDS] = Field(  # type: ignore[valid-type]  # pydantic: Literal of a tuple
        description="The environment whose kernel answered: the one the model was trained on."
    )
    cq_matrix: list[list[float]] = Field(description="93 x 5 subject x quality weights, rows summing to 1.")
    qx_matrix: list[list[float]] = Field(description="5 x 44 quality x exercise weights, rows summing to 1.")
    target_achievement_scores: dict[str, float] = Field(
        description="The score of each target subject (English name), as the environment computes it: "
        "CQ[s] . qualities on FitnessWeights-v0; on FitnessWeights-v1 the simulated trainee's score (after the "
        "weeks trained by the plan for optimize, at the start for predict)."
    )
    mean_target_score: float = Field(
        description="The environment's mean target score: the mean of target_achievement_scores on "
        "FitnessWeights-v0, the simulated trainee's on FitnessWeights-v1."
    )

    @staticmethod
    def _matrices(result: WeightsResult) -> dict[str, Any]:
        return {
            "env_id": result.env_id,
            "cq_matrix": result.cq.tolist(),
            "qx_matrix": result.qx.tolist(),
            "target_achievement_scores": result.target_scores,
            "mean_target_score": result.mean_target_score,
        }


class _WeightsResponse(_Matrices):
    user_id: str
    model_version: str = Field(description="The registry version that answered.")
    timestamp: datetime

    @staticmethod
    def _common(user_id: str, version: str, result: WeightsResult) -> dict[str, Any]:
        return {
            "user_id": user_id,
            "model_version": version,
            **_Matrices._matrices(result),
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
        if result.confidence is None:
            raise ValueError("not a predict_weights result: it has no confidence")
        return cls(**cls._common(user_id, version, result), prediction_confidence=result.confidence)


class TrainRequest(_Request):
    """``POST /train``: what a training job trains (see ``fitness_weights_api.JobConfig``)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"timesteps": 200_000}]})

    timesteps: WholeNumber = Field(ge=1, description="Environment steps to train for (at most the server's limit).")
    env_id: Literal[ENV_IDS] = Field(  # type: ignore[valid-type]  # pydantic: Literal of a tuple
        default=ENV_IDS[0], description="The environment to train in; the model is registered with it."
    )
    policy: Literal[POLICIES] = "AttnCQQXPolicy"  # type: ignore[valid-type]  # pydantic: Literal of a tuple
    preset: Literal[PRESET_NAMES] = Field(default="cpu", description="Throughput preset.")  # type: ignore[valid-type]
    n_envs: Annotated[int, Field(ge=1, le=MAX_N_ENVS), BeforeValidator(_whole)] | None = Field(
        default=None, description="Parallel envs (default: preset's)."
    )
    seed: WholeNumber = Field(default=0, ge=0, le=MAX_SEED)
    learning_rate: float = Field(default=DEFAULT_LEARNING_RATE, gt=0.0, le=1.0, allow_inf_nan=False)
    eval_trainees: WholeNumber = Field(default=50, ge=2, le=MAX_EVAL_TRAINEES, description="Held-out trainees.")
    eval_rollouts: WholeNumber = Field(
        default=20,
        ge=0,
        le=MAX_EVAL_ROLLOUTS,
        description="Rollouts between two evaluations during training (eval/normalized_score); 0 for none.",
    )
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


class JobWeightsResponse(_Matrices):
    """``/train/{job_id}/weights``: the matrices a job's latest checkpoint predicts for one trainee."""

    job_id: str
    trainee: str = Field(description="Who: 'held-out N' (the evaluation's held-out trainee N), or the user_id given.")
    target_subjects: list[int] = Field(description="The trainee's target subjects: their rows of cq_matrix.")
    source: Literal["checkpoint", "model"] = Field(
        description="'checkpoint' while the job trains (its latest one), 'model' once it has trained."
    )
    timesteps: int | None = Field(description="The timesteps the checkpoint was saved at.")
    prediction_confidence: float = Field(ge=0.0, le=1.0, description="Higher means a smaller expected error.")

    @classmethod
    def build(cls, job_id: str, trainee: str, weights: CheckpointWeights) -> JobWeightsResponse:
        """The response for a :meth:`~fitness_weights_api.job_weights.JobWeights.predict` result."""
        result = weights.result
        return cls(
            **cls._matrices(result),
            job_id=job_id,
            trainee=trainee,
            target_subjects=list(weights.profile.targets),
            source=weights.source,  # type: ignore[arg-type]  # "checkpoint" or "model"
            timesteps=weights.timesteps,
            prediction_confidence=result.confidence if result.confidence is not None else 0.0,
        )


class StudyResponse(BaseModel):
    """A tuning study of the service home (``fitness-weights tune``)."""

    study: str
    trials: int
    states: dict[str, int] = Field(description="Trials by state: complete, pruned, fail, running, waiting.")
    best_trial: int | None
    best_value: float | None = Field(description="The best normalized score on the validation trainees.")
    best_params: dict[str, Any]


class StudyTrial(BaseModel):
    """One trial of a study: a searched configuration, or a member of a population (``tune --pbt``)."""

    number: int
    state: str = Field(description="complete, pruned, fail, running or waiting.")
    value: float | None = Field(
        description="Its final normalized score on the validation trainees (a pruned trial's: its last report)."
    )
    params: dict[str, Any]
    curve: list[tuple[int, float]] = Field(
        description="(timesteps, validation score) of its reports to the pruner, at most 200 points."
    )
    worker: str | None = Field(description="host:pid of the process that ran it.")
    pbt_member: int | None = Field(description="Its member index, for a population's trial.")
    job_id: str | None = Field(description="The training job it became (tune --register), if any.")


class StudyDetailResponse(StudyResponse):
    """A study with its latest trials (at most 500)."""

    trial_details: list[StudyTrial]


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

        return cls.model_validate(
            {
                "qualities": [fields(q) for q in CATALOG.qualities],
                "subjects": [fields(s) for s in CATALOG.subjects],
                "exercises": [fields(e) for e in CATALOG.exercises],
                "performance_metrics": list(METRIC_NAMES),
            }
        )


class HealthResponse(BaseModel):
    """The worker that answered, and the model it serves."""

    status: Literal["ok", "degraded"] = Field(
        description="'degraded' when this worker cannot load the active version (it serves the one it had)."
    )
    active_model: str | None = Field(description="The registry's active version (None before the first).")
    served_model: str | None = Field(description="The version this worker answers with (None before it has one).")
    runtime: Literal["onnx", "torch"] | None = Field(
        default=None,
        description="What computes the served model's answers: its exported graphs in ONNX Runtime, or torch.",
    )
    problem: str | None = Field(description="Why the served version is not the active one (None when it is).")
    worker: str = Field(description="A random id of the worker that answered (also the X-Worker-Id header).")
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


_SOURCES = ("body", "path", "query", "header", "cookie")


def field_error_detail(loc: list[str | int], message: str, kind: str = "value_error") -> dict[str, Any]:
    """One :class:`FieldErrorDetail` as a dict; its message starts with the field's dotted path."""
    name = ".".join(str(part) for part in loc[1:]) or str(loc[0])
    return {"loc": loc, "msg": f"{name}: {message}", "type": kind}


def validation_details(errors: Any) -> list[dict[str, Any]]:
    """Pydantic's errors as :class:`FieldErrorDetail` dicts: union member tags dropped, the input not echoed.

    A location keeps its positions and the parts that are field names; any other part (a union member's tag, a
    name the client made up) is dropped. A location without FastAPI's source (``body``, ``path``, ...), as from
    ``model_validate``, is taken as the body's. A field typed ``dict | list`` fails both ways; when one way
    failed only on the type, the other way's error is the one that says what is wrong, so that field's type
    errors are dropped.
    """
    type_errors = ("dict_type", "list_type")
    details = []
    for error in errors:
        loc = [part for part in error["loc"] if isinstance(part, int) or _FIELD_NAME.fullmatch(str(part))]
        if not loc or loc[0] not in _SOURCES:
            loc = ["body", *loc]
        details.append(field_error_detail(loc, error["msg"], error["type"]))
    with_value_errors = {tuple(d["loc"][:2]) for d in details if d["type"] not in type_errors}
    unique: dict[tuple[Any, ...], dict[str, Any]] = {}
    for detail in details:
        if detail["type"] in type_errors and tuple(detail["loc"][:2]) in with_value_errors:
            continue
        unique.setdefault((tuple(detail["loc"]), detail["msg"]), detail)
    return list(unique.values())


class ParamChangeRequest(BaseModel):
    """A change of a running job's parameter, applied at its next rollout boundary (``sb3_ext.live_params``)."""

    model_config = ConfigDict(extra="forbid")

    name: Literal[
        "learning_rate", "lr_scale", "ent_coef", "clip_range", "vf_coef", "max_grad_norm", "n_epochs", "target_kl",
        "cq_coef", "qx_coef", "error_coef",
    ]  # fmt: skip
    value: Annotated[int, Field(strict=True)] | Annotated[float, Field(strict=True)] | None = Field(
        description="The new value (an integer for ``n_epochs``; ``null`` only for ``target_kl``)."
    )


class ParamChangeResponse(BaseModel):
    """A requested change and what became of it (``applied`` and ``error`` both null while it waits)."""

    seq: int
    name: str
    value: Any
    requested_by: str = Field(description="The requesting token's name and id.")
    requested: datetime
    applied: datetime | None
    timestep: int | None = Field(description="The job's timesteps when it took effect (or was refused).")
    previous: Any
    error: str | None

    @classmethod
    def build(cls, request: Any) -> ParamChangeResponse:
        """The response for a :class:`~fitness_weights_api.job_live.ParamRequest`."""
        data = request.to_dict()
        del data["job_id"]
        return cls(**data)


class MetricsRowResponse(BaseModel):
    """One logger dump of a job: the scalars TensorBoard gets (a NaN or infinite value as null)."""

    seq: int
    step: int
    recorded: datetime
    metrics: dict[str, float | None]


class LogLineResponse(BaseModel):
    """One line of a job's log."""

    seq: int
    recorded: datetime
    level: Literal["info", "warning", "error"]
    text: str
