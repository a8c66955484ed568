"""The model registry: names, defaults, weight tags, and telling registered names apart."""

from __future__ import annotations

import pytest
from _tiny_model import TINY, TINY_TAGGED, TinyModule, register_tiny_models, use_tiny_registry

from hdrzoo.errors import ModelError
from hdrzoo.hub import list_models
from hdrzoo.models.registry import (
    WeightTag,
    get_entry,
    model_name_of,
    register_model,
    registered_names,
)


@pytest.fixture
def tiny(monkeypatch):
    return use_tiny_registry(monkeypatch)


def test_registering_the_same_class_again_is_a_no_op(tiny):
    before = get_entry(TINY_TAGGED)
    register_tiny_models()
    register_tiny_models()
    after = get_entry(TINY_TAGGED)
    assert after.module_cls is TinyModule and after.kwargs == before.kwargs == {"channels": 6}
    assert registered_names("tiny_*") == [TINY_TAGGED, TINY]


def test_a_name_cannot_be_taken_by_another_class(tiny):
    class Impostor(TinyModule):
        """Another class."""

    with pytest.raises(ModelError, match=f"'{TINY}' is registered twice.*TinyModule.*Impostor"):
        register_model(TINY)(Impostor)
    assert get_entry(TINY).module_cls is TinyModule


def test_weight_tags_must_be_unique(tiny):
    with pytest.raises(ModelError, match="unique"):
        register_model("tiny_dup", weights=[WeightTag("a"), WeightTag("a")])
    assert "tiny_dup" not in registered_names()


def test_description_comes_from_the_docstring_when_not_given(tiny):
    class Undocumented(TinyModule):
        pass

    class Documented(TinyModule):
        """First line.

        More text.
        """

    register_model("tiny_undocumented")(Undocumented)
    register_model("tiny_documented")(Documented)
    register_model("tiny_described", description="Given.")(Documented)
    assert get_entry("tiny_undocumented").description == ""
    assert get_entry("tiny_documented").description == "First line."
    assert get_entry("tiny_described").description == "Given."


def test_first_weight_tag_is_the_default(tiny):
    entry = get_entry(TINY_TAGGED)
    assert entry.default_tag is entry.weights["demo"]
    assert entry.tag("authors").source == "tiny_authors.pth from the paper's website"
    assert get_entry(TINY).default_tag is None
    with pytest.raises(ModelError) as info:
        entry.tag("nope")
    assert str(info.value) == (
        f"model '{TINY_TAGGED}' has no weight tag 'nope'; "
        f"known tags: {TINY_TAGGED}.demo, {TINY_TAGGED}.authors"
    )
    with pytest.raises(ModelError, match="known tags: none"):
        get_entry(TINY).tag("x")


def test_build_applies_the_name_defaults_then_overrides(tiny):
    assert get_entry(TINY).build().net.encode.out_channels == 4
    assert get_entry(TINY_TAGGED).build().net.encode.out_channels == 6
    assert get_entry(TINY_TAGGED).build(channels=2).net.encode.out_channels == 2
    with pytest.raises(ModelError, match=r"does not accept these arguments \['colour'\]"):
        get_entry(TINY).build(colour=1)


def test_unknown_name_lists_what_is_available(tiny):
    with pytest.raises(ModelError) as info:
        get_entry("nope")
    listed = str(info.value).split("available: ")[1].split(" (")[0].split(", ")
    assert listed == sorted(listed) and {"classic", TINY_TAGGED, TINY} <= set(listed)
    assert isinstance(info.value, KeyError) and not str(info.value).startswith("'")


def test_registered_names_are_sorted_and_globbed(tiny):
    names = registered_names()
    assert names == sorted(names)
    assert registered_names("tiny_te?t") == [TINY]
    assert registered_names("*tagged") == [TINY_TAGGED]
    assert registered_names("[c]*") == ["classic"]


def test_model_name_of_prefers_the_most_specific_registered_name(tiny):
    assert model_name_of(TinyModule()) == TINY
    assert model_name_of(TinyModule(channels=6)) == TINY_TAGGED
    # A catch-all alias (no defaults) that sorts first must not shadow the specific name.
    register_model("tiny_0")(TinyModule)
    assert model_name_of(TinyModule(channels=6)) == TINY_TAGGED
    assert model_name_of(TinyModule(channels=3)) == "tiny_0"  # both generic names fit; first wins
    explicit = TinyModule(channels=6)
    explicit.registry_name = TINY
    assert model_name_of(explicit) == TINY


def test_model_name_of_unregistered_class_raises(tiny):
    class Stranger(TinyModule):
        """Not registered."""

    with pytest.raises(ModelError, match="Stranger is not a registered hdrzoo model"):
        model_name_of(Stranger())


def test_weight_tag_to_dict_round_trips(tiny):
    tag = WeightTag("t", hub_id="o/r", revision="abc", metrics={"k": {"psnr_mu": 1.0}})
    assert WeightTag(**tag.to_dict()) == tag
    assert tag.to_dict()["conventions"] == {}


def test_tiny_registry_does_not_leak_into_other_tests():
    with pytest.MonkeyPatch.context() as patch:
        use_tiny_registry(patch)
        assert {TINY, TINY_TAGGED} <= set(list_models())
    assert not {TINY, TINY_TAGGED} & set(list_models())
    assert "classic" in list_models()
