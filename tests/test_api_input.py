"""Request input over HTTP: strict JSON types, and 422s that name the field and its position but never echo the input.

Run against ``create_app(settings)`` in this process behind starlette's ``TestClient`` (``InProcessApi`` in
conftest.py): each body goes through the app as bytes, so the checks see what FastAPI does with it (parse the
JSON, then validate the Python values: strict mode must hold there), without a socket or a server process.
"""

import json
import math
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from conftest import InProcessApi
from pydantic import ValidationError

from fitness_weights_api import ModelRegistry
from fitness_weights_api.schemas import OptimizeRequest, TrainRequest, validation_details
from fitness_weights_api.settings import ServiceSettings
from fitness_weights_env import CATALOG, METRIC_NAMES, FieldError, sample_profile

MARKER = "ZQXmarker"
NUMBER_MARKER = "98765"  # in the digits of every odd number sent; none may come back in a 422
WEIGHTS = ("/predict_weights", "/optimize_weights")


@pytest.fixture(scope="module")
def home(tmp_path_factory, tiny_models) -> Path:
    """A service folder with ``tiny_models["attn0"]`` active."""
    folder = tmp_path_factory.mktemp("input_service")
    settings = ServiceSettings(home=folder)
    ModelRegistry(settings.registry_root, settings.registry_url).register(
        tiny_models["attn0"], training_config={"seed": 0}, activate=True
    )
    return folder


@pytest.fixture(scope="module")
def client(home) -> Iterator[httpx.Client]:
    """The in-process app's client (a ``TestClient``, an ``httpx.Client``), with an admin token: /train needs one."""
    with InProcessApi(home) as api:
        api.client.headers.update(api.auth)
        yield api.client


@pytest.fixture(scope="module")
def body() -> dict:
    """A valid optimize request, with every field (names for qualities and metrics, a list of scores)."""
    profile = sample_profile(np.random.default_rng(11))
    request = OptimizeRequest.from_profile(profile, "trainee-1", optimization_steps=4, seed=1)
    return request.model_dump(mode="json")


def post(client: httpx.Client, endpoint: str, body: object) -> httpx.Response:
    """``body`` as JSON text (``allow_nan``: NaN and Infinity are what Python's and FastAPI's parser read)."""
    text = json.dumps(body, ensure_ascii=False)
    return client.post(endpoint, content=text.encode(), headers={"content-type": "application/json"})


def fields_of(body: dict, endpoint: str) -> dict:
    """The body without the optimize-only fields for /predict_weights."""
    if endpoint == "/predict_weights":
        return {k: v for k, v in body.items() if k not in ("optimization_steps", "seed", "deterministic")}
    return body


def details_at(response: httpx.Response, field: str) -> list[dict]:
    """The 422's details at ``field``, after checking the error contract (loc, msg, type) of every detail."""
    assert response.status_code == 422, response.text
    details = response.json()["detail"]
    assert isinstance(details, list) and details, details
    for detail in details:
        assert set(detail) == {"loc", "msg", "type"}, detail
        assert detail["loc"][0] == "body", detail
        name = ".".join(str(part) for part in detail["loc"][1:]) or "body"
        assert detail["msg"].startswith(f"{name}: "), detail
    return [d for d in details if d["loc"][:2] == ["body", field]]


# -- strict types: no coercion ------------------------------------------------------------------------------------


def _set(field: str, value: object) -> Callable[[dict], dict]:
    return lambda body: {**body, field: value}


def _item(field: str, position: int, value: object) -> Callable[[dict], dict]:
    def mutate(body: dict) -> dict:
        items = list(body[field])
        items[position] = value
        return {**body, field: items}

    return mutate


def _entry(field: str, name: str, value: object) -> Callable[[dict], dict]:
    return lambda body: {**body, field: {**body[field], name: value}}


def _five_qualities(value: object, position: int) -> Callable[[dict], dict]:
    return lambda body: {**body, "current_qualities": [0.5] * position + [value] + [0.5] * (4 - position)}


# case: (mutation, field, the loc after ["body", field], the pydantic error type, optimize only)
LOOSE = {
    "deterministic 0": (_set("deterministic", 0), "deterministic", [], "bool_type", True),
    "deterministic 1": (_set("deterministic", 1), "deterministic", [], "bool_type", True),
    "deterministic 'true'": (_set("deterministic", "true"), "deterministic", [], "bool_type", True),
    "deterministic 'false'": (_set("deterministic", "false"), "deterministic", [], "bool_type", True),
    "deterministic 0.0": (_set("deterministic", 0.0), "deterministic", [], "bool_type", True),
    "deterministic null": (_set("deterministic", None), "deterministic", [], "bool_type", True),
    "steps true": (_set("optimization_steps", True), "optimization_steps", [], "int_type", True),
    "steps '16'": (_set("optimization_steps", "16"), "optimization_steps", [], "int_type", True),
    "steps 16.5": (_set("optimization_steps", 16.5), "optimization_steps", [], "int_type", True),
    "seed false": (_set("seed", False), "seed", [], "int_type", True),
    "seed '3'": (_set("seed", "3"), "seed", [], "int_type", True),
    "age '23'": (_set("age", "23"), "age", [], "int_type", False),
    "age true": (_set("age", True), "age", [], "int_type", False),
    "age null": (_set("age", None), "age", [], "int_type", False),
    "fitness '0.5'": (_set("fitness_level", "0.5"), "fitness_level", [], "float_type", False),
    "fitness true": (_set("fitness_level", True), "fitness_level", [], "float_type", False),
    "fitness false": (_set("fitness_level", False), "fitness_level", [], "float_type", False),
    "user_id 42": (_set("user_id", 42), "user_id", [], "string_type", False),
    "user_id true": (_set("user_id", True), "user_id", [], "string_type", False),
    "gender 1": (_set("gender", 1), "gender", [], "literal_error", False),
    "gender true": (_set("gender", True), "gender", [], "literal_error", False),
    "targets a string": (_set("target_subjects", "3000 m run"), "target_subjects", [], "list_type", False),
    "target 7": (_set("target_subjects", ["3000 m run", 7]), "target_subjects", [1], "string_type", False),
    "target true": (_set("target_subjects", [True]), "target_subjects", [0], "string_type", False),
    "quality true in a list": (_five_qualities(True, 3), "current_qualities", [3], "float_type", False),
    "quality '0.5' in a list": (_five_qualities("0.5", 0), "current_qualities", [0], "float_type", False),
    "quality true by name": (
        _entry("current_qualities", "power", True),
        "current_qualities",
        [3, "value"],
        "float_type",
        False,
    ),
    "quality '1' by name": (
        _entry("current_qualities", "endurance", "1"),
        "current_qualities",
        [0, "value"],
        "float_type",
        False,
    ),
    "score false": (_item("subject_scores", 40, False), "subject_scores", [40], "float_type", False),
    "score '0.3'": (_item("subject_scores", 92, "0.3"), "subject_scores", [92], "float_type", False),
    "metric true": (
        _entry("performance_metrics", "consistency", True),
        "performance_metrics",
        [3, "value"],
        "float_type",
        False,
    ),
    "metric in a list": (
        _set("performance_metrics", [0.5, 0.5, "0.5", 0.5]),
        "performance_metrics",
        [2],
        "float_type",
        False,
    ),
}


@pytest.mark.parametrize("case", list(LOOSE))
def test_loose_coercions_get_a_422_naming_the_field(client, body, case):
    mutate, field, where, kind, optimize_only = LOOSE[case]
    for endpoint in WEIGHTS[1:] if optimize_only else WEIGHTS:
        response = post(client, endpoint, mutate(fields_of(body, endpoint)))
        mine = details_at(response, field)
        assert [d["loc"] for d in mine] == [["body", field, *where]], (endpoint, response.json())
        assert mine[0]["type"] == kind, (endpoint, mine)
        assert mine[0]["msg"].startswith(".".join(map(str, [field, *where])) + ": "), mine


@pytest.mark.parametrize(
    ("case", "field", "value", "kind"),
    [
        ("timesteps '1000'", "timesteps", "1000", "int_type"),
        ("timesteps true", "timesteps", True, "int_type"),
        ("n_envs true", "n_envs", True, "int_type"),
        ("seed '0'", "seed", "0", "int_type"),
        ("eval_trainees 2.5", "eval_trainees", 2.5, "int_type"),
        ("learning_rate '0.001'", "learning_rate", "0.001", "float_type"),
        ("learning_rate true", "learning_rate", True, "float_type"),
        ("activate 1", "activate", 1, "bool_type"),
        ("activate 'yes'", "activate", "yes", "bool_type"),
        ("policy 1", "policy", 1, "literal_error"),
    ],
)
def test_train_requests_are_strict_too(client, case, field, value, kind):
    body = {"timesteps": 1000, field: value} if field != "timesteps" else {field: value}
    with pytest.raises(ValidationError) as raised:
        TrainRequest.model_validate(body)
    assert [(d["loc"], d["type"]) for d in validation_details(raised.value.errors())] == [(["body", field], kind)]
    response = post(client, "/train", body)  # every body here is refused, so no job starts
    assert [(d["loc"], d["type"]) for d in details_at(response, field)] == [(["body", field], kind)]


# -- numbers: JSON has one number type ----------------------------------------------------------------------------


def _as_integers(body: dict) -> dict:
    """The same request with every float field an integral number (0 or 1) and every integer field a float."""
    qualities = dict.fromkeys(body["current_qualities"], 1)
    return {
        **body,
        "age": float(body["age"]),
        "fitness_level": 1,
        "current_qualities": qualities,
        "subject_scores": [i % 2 for i in range(CATALOG.n_subjects)],
        "performance_metrics": dict.fromkeys(METRIC_NAMES, 0),
        "optimization_steps": 4.0,
        "seed": 1.0,
    }


def _as_floats(body: dict) -> dict:
    """:func:`_as_integers`' request written with floats for the float fields and integers for the others."""
    integers = _as_integers(body)
    return {
        **integers,
        "age": int(integers["age"]),
        "fitness_level": 1.0,
        "current_qualities": {name: 1.0 for name in integers["current_qualities"]},
        "subject_scores": [float(v) for v in integers["subject_scores"]],
        "performance_metrics": dict.fromkeys(METRIC_NAMES, 0.0),
        "optimization_steps": 4,
        "seed": 1,
    }


def test_integral_numbers_stay_valid_for_float_fields(client, body):
    integers, floats = _as_integers(body), _as_floats(body)
    text = json.dumps(integers)
    assert '"fitness_level": 1,' in text and '"age": ' + str(float(body["age"])) in text  # the JSON says so
    for endpoint in WEIGHTS:
        answers = [post(client, endpoint, fields_of(b, endpoint)) for b in (integers, floats)]
        assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
        first, second = (a.json() for a in answers)
        assert first["cq_matrix"] == second["cq_matrix"] and first["qx_matrix"] == second["qx_matrix"]
        assert first["target_achievement_scores"] == second["target_achievement_scores"]
    assert post(client, "/optimize_weights", integers).json()["optimization_steps"] == 4
    assert TrainRequest.model_validate({"timesteps": 1000.0, "learning_rate": 1}).learning_rate == 1.0


def test_integral_numbers_for_a_train_request():
    request = TrainRequest.model_validate({"timesteps": 1e3, "learning_rate": 1, "n_envs": 2.0, "seed": 0})
    assert (request.timesteps, request.n_envs, request.learning_rate) == (1000, 2, 1.0)
    assert type(request.timesteps) is int and type(request.learning_rate) is float


# -- no echo: the field and its position, never the input ---------------------------------------------------------


def test_an_unknown_name_is_named_by_its_position_with_catalog_suggestions(client, body):
    qualities = {name: value for name, value in body["current_qualities"].items() if name != "strength"}
    cases = [
        ("target_subjects", {"target_subjects": ["3000 m run", "3000m runnZQX"]}, "item 1 is an unknown subject"),
        ("current_qualities", {"current_qualities": {**qualities, "strenghtZQX": 1}}, "entry 4 is an unknown quality"),
        ("subject_scores", {"subject_scores": {"Pull-ups": 0.5, "pullupsZQX": 0.5}}, "entry 1 is an unknown subject"),
        ("performance_metrics", {"performance_metrics": {"consistancyZQX": 0.5}}, "entry 0 is an unknown metric"),
    ]
    for field, change, message in cases:
        for endpoint in WEIGHTS:
            response = post(client, endpoint, fields_of({**body, **change}, endpoint))
            mine = details_at(response, field)
            assert len(mine) == 1 and message in mine[0]["msg"], mine
            assert "ZQX" not in response.text and "did you mean '" in response.text, response.text
    trainee = fields_of(body, "/predict_weights")
    response = post(client, "/predict_weights", {**trainee, "target_subjects": ["3000 m run", "3000m runn"]})
    assert details_at(response, "target_subjects")[0]["msg"].startswith(
        "target_subjects: item 1 is an unknown subject; did you mean '3000 m run', "
    )
    assert "3000m runn" not in response.text


def test_a_name_given_twice_is_named_by_its_positions(client, body):
    # both spellings name catalog items, so the answer may name the catalog's English name, never the one sent
    qualities = {"  EnDuRaNcE ": 0.5, "flexibility": 0.5, "耐力": 0.5}
    trainee = fields_of(body, "/predict_weights")
    response = post(client, "/predict_weights", {**trainee, "current_qualities": qualities})
    message = details_at(response, "current_qualities")[0]["msg"]
    assert message == "current_qualities: entries 0 and 2 both give quality 'endurance' (given twice)"
    response = post(client, "/predict_weights", {**trainee, "target_subjects": ["3000 m run", "3000  M  RUN"]})
    message = details_at(response, "target_subjects")[0]["msg"]
    assert message == "target_subjects: items 0 and 1 both name subject '3000 m run' (listed twice)"
    assert "M  RUN" not in response.text


def test_a_dict_entrys_error_is_at_its_position_not_its_name(client, body):
    bad = {"endurance": 0.5, "zqxmarker": 1.5, "": 0.2, MARKER * 30: 0.1, "power": "x"}
    trainee = fields_of(body, "/predict_weights")
    response = post(client, "/predict_weights", {**trainee, "current_qualities": bad})
    locations = sorted(d["loc"] for d in details_at(response, "current_qualities"))
    assert locations == [
        ["body", "current_qualities", 1, "value"],
        ["body", "current_qualities", 2, "name"],
        ["body", "current_qualities", 3, "name"],
        ["body", "current_qualities", 4, "value"],
    ]
    assert "zqxmarker" not in response.text.lower()
    too_many = {f"{MARKER}{i}": 0.5 for i in range(CATALOG.n_qualities + 1)}
    response = post(client, "/predict_weights", {**trainee, "current_qualities": too_many})
    assert [d["type"] for d in details_at(response, "current_qualities")] == ["too_long"]


def test_an_unknown_top_level_field_is_named_only_when_it_looks_like_a_field_name(client, body):
    trainee = fields_of(body, "/predict_weights")
    response = post(client, "/predict_weights", {**trainee, "favourite_colour": "blue"})
    assert [d["msg"] for d in details_at(response, "favourite_colour")] == [
        "favourite_colour: Extra inputs are not permitted"
    ]
    for name in (MARKER, f"{MARKER.lower()} field", "<b>zqxmarker</b>", "zqxmarker" * 10, "Age"):
        response = post(client, "/predict_weights", {**trainee, name: 1})
        assert response.status_code == 422
        assert [d["loc"] for d in response.json()["detail"]] == [["body"]], response.text
        assert response.json()["detail"][0]["msg"].startswith(f"body: field {len(trainee)} is not one of")
        assert "zqxmarker" not in response.text.lower() and "<b>" not in response.text


def _marker_bodies(body: dict) -> Iterator[tuple[str, object]]:
    """Bodies with :data:`MARKER` in one place each: every string field, dict key and list item, and more."""
    m = MARKER
    strings = {"user_id": m, "gender": m, "age": m, "fitness_level": m, "deterministic": m, "seed": m}
    for field, value in strings.items():
        yield field, {**body, field: value}
    yield "optimization_steps", {**body, "optimization_steps": m}
    yield "long user_id", {**body, "user_id": m * 20}
    for position in range(2):
        yield f"target {position}", {**body, "target_subjects": ["3000 m run", m][position:] + [m][:position]}
    yield "target prefix", {**body, "target_subjects": [f"3000 m run{m}"]}
    yield "target long", {**body, "target_subjects": [m * 30]}
    yield "target object", {**body, "target_subjects": [{m: m}]}
    yield "target list", {**body, "target_subjects": [[m]]}
    yield "targets object", {**body, "target_subjects": {m: "3000 m run"}}
    for field in ("current_qualities", "performance_metrics"):
        yield f"{field} key", {**body, field: {**body[field], m: 0.5}}
        yield f"{field} bracket key", {**body, field: {**body[field], f"x[{m}]": 0.5}}
        yield f"{field} value", {**body, field: {**body[field], next(iter(body[field])): m}}
        yield f"{field} nested", {**body, field: {**body[field], next(iter(body[field])): {m: [m]}}}
        yield f"{field} list", {**body, field: [m] * len(body[field])}
        yield f"{field} string", {**body, field: m}
    yield "scores key", {**body, "subject_scores": {m: 0.5}}
    yield "scores near key", {**body, "subject_scores": {f"Pull-ups {m}": 0.5}}
    yield "scores item", {**body, "subject_scores": [*body["subject_scores"][:-1], m]}
    yield "scores object", {**body, "subject_scores": [{m: 1}] * CATALOG.n_subjects}
    yield "top-level key", {**body, m: m}
    yield "top-level key with spaces", {**body, f"{m} {m}": 1}
    yield "top-level key lowercase phrase", {**body, f"{m.lower()}!": 1}
    yield "body a string", m
    yield "body a list", [m, {m: m}]
    yield "body an object of markers", {m: m}
    yield "body with a duplicate", {**body, "target_subjects": [m, m]}


@pytest.mark.parametrize("endpoint", WEIGHTS)
def test_no_marker_comes_back_from_any_field(client, body, endpoint):
    answered: dict[int, int] = {}
    cases = list(_marker_bodies(fields_of(body, endpoint)))
    for case, sent in cases:
        response = post(client, endpoint, sent)
        answered[response.status_code] = answered.get(response.status_code, 0) + 1
        assert response.status_code in (200, 422), (case, response.text)
        if response.status_code == 200:  # only user_id is echoed, as the answer's user_id
            assert case == "user_id" and response.json()["user_id"] == MARKER, (case, response.text)
            assert response.text.count(MARKER) == 1, (case, response.text)
            continue
        assert MARKER.lower() not in response.text.lower(), (case, response.text)
        details_at(response, "")  # checks the 422 contract of every detail
    assert answered == {200: 1, 422: len(cases) - 1}, answered


ODD_NUMBERS = [
    9876543210123456789012345,  # beyond every int bound, and not a float32
    -98765,
    98765.5,
    1.98765e307,
    -1.98765e-300,
    0.98765e-320,  # subnormal: valid where a number in [0, 1] is asked for
    1.0000000000098765,
    -0.0,
    math.inf,
    -math.inf,
    math.nan,
]


def _odd_number_bodies(body: dict, number: float) -> Iterator[tuple[str, dict]]:
    for field in ("age", "fitness_level", "optimization_steps", "seed", "deterministic", "user_id", "gender"):
        yield field, {**body, field: number}
    yield "quality in a list", {**body, "current_qualities": [0.5, 0.5, number, 0.5, 0.5]}
    yield "quality by name", {**body, "current_qualities": {**body["current_qualities"], "agility": number}}
    yield "score", {**body, "subject_scores": [*body["subject_scores"][:-1], number]}
    yield "metric", {**body, "performance_metrics": {**body["performance_metrics"], "injury_risk": number}}
    yield "target", {**body, "target_subjects": [number]}


@pytest.mark.parametrize("number", ODD_NUMBERS, ids=repr)
def test_odd_numbers_are_refused_or_taken_but_never_echoed(client, body, number):
    spellings = {json.dumps(number), repr(number), str(number), NUMBER_MARKER}
    if math.isfinite(number) and number != 0:
        spellings.add(f"{number:.6g}")  # how a message would write it
    spellings = {s for s in spellings if NUMBER_MARKER in s or len(s) > 4}  # not "1", "-0.0", "inf": constraints
    statuses = []
    for endpoint in WEIGHTS:
        for case, sent in _odd_number_bodies(fields_of(body, endpoint), number):
            if endpoint == "/predict_weights" and case in ("optimization_steps", "seed", "deterministic"):
                continue
            response = post(client, endpoint, sent)
            statuses.append(response.status_code)
            assert response.status_code in (200, 422), (case, response.text)
            if response.status_code == 422:
                echoed = [s for s in spellings if s in response.text]
                assert not echoed, (case, echoed, response.text)
                details_at(response, "")
    in_unit = math.isfinite(number) and 0.0 <= number <= 1.0
    if not in_unit:
        assert set(statuses) == {422}, statuses
    else:
        assert 200 in statuses, statuses  # a float field takes it


def test_train_bodies_with_markers_do_not_echo(client):
    bodies = [
        {"timesteps": MARKER},
        {"timesteps": 1000, "policy": MARKER},
        {"timesteps": 1000, "preset": MARKER},
        {"timesteps": 1000, MARKER: 1},
        {"timesteps": 1000, "n_envs": [MARKER]},
        {"timesteps": 1000, "activate": MARKER},
        {"timesteps": 1000, "learning_rate": {MARKER: MARKER}},
    ]
    for sent in bodies:  # in-process first: what /train would answer after its token check
        with pytest.raises(ValidationError) as raised:
            TrainRequest.model_validate(sent)
        assert MARKER not in json.dumps(validation_details(raised.value.errors()))
    for sent in bodies:
        response = post(client, "/train", sent)
        assert response.status_code == 422 and MARKER not in response.text, response.text


def test_python_users_still_see_their_own_input():
    """``str(FieldError)`` (the CLI's message) may quote what was typed; its ``reason`` (the API's) does not."""
    profile = sample_profile(np.random.default_rng(3))
    request = OptimizeRequest.from_profile(profile, "cli", target_subjects=["3000m runn"])
    with pytest.raises(FieldError) as raised:
        request.to_profile()
    assert raised.value.field == "target_subjects"
    assert raised.value.reason.startswith("item 0 is an unknown subject; did you mean '3000 m run'")
    assert "3000m runn" not in raised.value.reason
    assert str(raised.value).startswith(f"target_subjects: {raised.value.reason}")
    assert str(raised.value).endswith("(got '3000m runn')")
