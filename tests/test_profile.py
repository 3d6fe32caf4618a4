import json
import math

import numpy as np
import pytest

from fitness_weights_env import LAYOUT, FieldError, TraineeProfile, sample_profile
from fitness_weights_env.population import sample_vectors


def _fields(profile: TraineeProfile) -> dict:
    return {
        "age": profile.age,
        "gender": profile.gender,
        "fitness_level": profile.fitness_level,
        "qualities": list(profile.qualities),
        "subject_scores": list(profile.subject_scores),
        "targets": list(profile.targets),
        "performance_metrics": list(profile.performance_metrics),
    }


def test_layout_slices_are_named_and_in_order():
    sizes = {name: s.stop - s.start for name, s in LAYOUT.fields.items()}
    assert sizes == {
        "age": 1, "gender": 1, "fitness_level": 1, "qualities": 5,
        "subject_scores": 93, "targets": 93, "metrics": 4,
    }  # fmt: skip
    assert LAYOUT.size == 198
    assert LAYOUT.metrics.stop == LAYOUT.size


def test_vector_round_trip_is_exact(profile):
    vector = profile.to_vector()
    assert vector.dtype == np.float32 and vector.shape == (198,)
    assert TraineeProfile.from_vector(vector) == profile
    for vector in sample_vectors([np.random.default_rng(i) for i in range(50)]):
        np.testing.assert_array_equal(TraineeProfile.from_vector(vector).to_vector(), vector)


def test_vector_encoding(profile):
    vector = profile.to_vector()
    assert vector[LAYOUT.age][0] == np.float32((profile.age - 16) / 49)
    assert vector[LAYOUT.gender][0] == (profile.gender == "female")
    np.testing.assert_array_equal(np.flatnonzero(vector[LAYOUT.targets]), profile.targets)
    np.testing.assert_array_equal(vector[LAYOUT.qualities], profile.qualities)


def test_dict_round_trip_through_json(profile):
    data = json.loads(json.dumps(profile.to_dict(), ensure_ascii=False))
    assert TraineeProfile.from_dict(data) == profile


def test_names_and_indices_give_the_same_profile(profile):
    by_index = TraineeProfile(**{**_fields(profile), "targets": [8, 0]})
    by_name = TraineeProfile(**{**_fields(profile), "targets": ["3000米跑", "pull-ups"]})
    assert by_index == by_name and by_index.targets == (0, 8)
    assert by_name.target_names == ["3000 m run", "Pull-ups"]


def test_qualities_and_metrics_accept_mappings(profile):
    fields = _fields(profile)
    fields["qualities"] = dict(
        zip(["strength", "power", "agility", "flexibility", "endurance"], [0.1, 0.2, 0.3, 0.4, 0.5], strict=True)
    )
    fields["performance_metrics"] = {
        "consistency": 0.9, "training_efficiency": 0.8, "injury_risk": 0.1, "recent_improvement": 0.5,
    }  # fmt: skip
    p = TraineeProfile(**fields)
    np.testing.assert_allclose(p.qualities, [0.5, 0.4, 0.3, 0.2, 0.1], rtol=1e-6)
    np.testing.assert_allclose(p.performance_metrics, [0.5, 0.1, 0.8, 0.9], rtol=1e-6)


BAD_FIELDS = [
    ("age", 15, "outside"),
    ("age", 66, "outside"),
    ("age", 23.5, "whole years"),
    ("age", math.nan, "whole years"),
    ("age", "23", "whole years"),
    ("age", True, "whole years"),
    ("gender", "other", "expected one of"),
    ("gender", None, "expected one of"),
    ("fitness_level", math.nan, "finite number"),
    ("fitness_level", -0.1, "finite number"),
    ("fitness_level", 1.5, "finite number"),
    ("fitness_level", "high", "expected a number"),
    ("qualities", [0.5] * 4, "expected 5 values"),
    ("qualities", [0.5, 0.5, math.nan, 0.5, 0.5], "agility must be a finite.*got nan"),
    ("qualities", [0.5, 0.5, 0.5, 1.2, 0.5], "power must be .*got 1.2"),
    ("qualities", {"speed": 0.5}, "unknown keys.*got \\['speed'\\]"),
    ("qualities", "fast", "got a string"),
    ("subject_scores", [0.5] * 92, "expected 93 values"),
    ("subject_scores", [0.5] * 92 + [math.inf], "\\[92\\] must be .*got inf"),
    ("subject_scores", [-0.5] + [0.5] * 92, "\\[0\\] must be .*got -0.5"),
    ("targets", [], "at least one target"),
    ("targets", ["pullups"], "unknown subject; did you mean.*got 'pullups'"),
    ("targets", ["Pull-ups", "单杠引体向上"], "listed twice"),
    ("targets", [93], "out of range"),
    ("targets", [1.5], "name or an index"),
    ("performance_metrics", [0.5] * 3, "expected 4 values"),
    ("performance_metrics", [0.5, 0.5, 0.5, -math.inf], "consistency must be .*got -inf"),
]


@pytest.mark.parametrize(("field", "value", "message"), BAD_FIELDS)
def test_invalid_field_is_named(profile, field, value, message):
    with pytest.raises(FieldError, match=f"^{field}: .*{message}") as error:
        TraineeProfile(**{**_fields(profile), field: value})
    assert error.value.field == field
    assert isinstance(error.value, ValueError)


def test_from_dict_rejects_unknown_and_missing_fields(profile):
    data = profile.to_dict()
    with pytest.raises(FieldError, match=r"^height: unknown field"):
        TraineeProfile.from_dict({**data, "height": 180})
    del data["gender"]
    with pytest.raises(FieldError, match=r"^gender: is required"):
        TraineeProfile.from_dict(data)
    with pytest.raises(FieldError, match=r"^profile: expected a mapping"):
        TraineeProfile.from_dict([1, 2])


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda v: v[:197], "vector"),
        (lambda v: np.where(np.arange(198) == LAYOUT.qualities.start, np.nan, v), "qualities"),
        (lambda v: np.where(np.arange(198) == LAYOUT.gender.start, 0.5, v), "gender"),
        (lambda v: np.where(np.arange(198) == LAYOUT.age.start, 1.5, v), "age"),
        (lambda v: np.where(np.arange(198) == LAYOUT.targets.start, 0.5, v), "targets"),
        (
            lambda v: np.where((np.arange(198) >= LAYOUT.targets.start) & (np.arange(198) < LAYOUT.targets.stop), 0, v),
            "targets",
        ),
        (lambda v: np.where(np.arange(198) == LAYOUT.metrics.start, 2.0, v), "performance_metrics"),
    ],
)
def test_from_vector_names_the_bad_slice(profile, edit, field):
    with pytest.raises(FieldError) as error:
        TraineeProfile.from_vector(edit(profile.to_vector()))
    assert error.value.field == field


def test_profiles_are_immutable_and_hashable(profile):
    with pytest.raises(AttributeError):
        profile.age = 30
    with pytest.raises(ValueError):
        profile.qualities[0] = 1.0
    assert len({profile, TraineeProfile.from_vector(profile.to_vector())}) == 1
    assert profile != sample_profile(np.random.default_rng(1))
