"""hdrzoo.load / export / list_models: every weight source, the Hub cache, and the failure modes.

The Hub is a local HTTP server (``hub_server.py``) speaking the protocol ``hf_hub_download``
uses; the model is a tiny registered test network (``_tiny_model.py``) whose tensors are
compared bit for bit with the module they were exported from.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from _tiny_model import (
    TINY,
    TINY_TAGGED,
    TinyModule,
    random_batch,
    randomize,
    register_tiny_models,
)
from hub_server import HubServer, set_offline
from safetensors import safe_open
from safetensors.torch import save_file

import hdrzoo
from hdrzoo.errors import ModelError, WeightsError
from hdrzoo.hub import create_model, export, list_models, load, load_weights_into

# Hand count for TinyNet(channels=4): encode 4*3*3*3 + 4, norm 4 + 4, decode 3*4*3*3 + 3.
TINY_PARAMETERS = 108 + 4 + 8 + 108 + 3


def trained_tiny(seed: int = 1, **overrides) -> TinyModule:
    """A tiny model with random (seeded) weights and buffers, as if trained."""
    return randomize(create_model(TINY, **overrides), seed).eval()


def assert_same_network(loaded, original) -> None:
    """Every tensor of ``loaded.net`` equals ``original.net``'s bit for bit, and so do the outputs."""
    assert type(loaded) is type(original)
    mine, theirs = loaded.net.state_dict(), original.net.state_dict()
    assert sorted(mine) == sorted(theirs)
    for key in theirs:
        assert mine[key].dtype == theirs[key].dtype, key
        assert torch.equal(mine[key], theirs[key]), key
    batch = random_batch()
    with torch.no_grad():
        out_loaded = loaded.eval()(batch["ldr"], batch["exposures"], batch["ref"]).hdr
        out_original = original.eval()(batch["ldr"], batch["exposures"], batch["ref"]).hdr
    assert torch.equal(out_loaded, out_original)


def publish(server: HubServer, module, repo_id: str = "org/tiny") -> str:
    """Export ``module`` into the server's repository ``repo_id``; return the commit hash."""
    export(module, server.root / repo_id)
    return server.commit(repo_id)


def requested_files(server: HubServer) -> set[str]:
    return {Path(path).name for _, path in server.requests}


# ----------------------------------------------------------------- local-dir -----
def test_export_writes_card_config_and_weights_that_round_trip_bit_exactly(tiny, tmp_path):
    original = trained_tiny()
    out = export(original, tmp_path / "export")

    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    config = json.loads((out / "config.json").read_text())
    assert config["format"] == "hdrzoo-weights-v1"
    assert config["model"] == TINY
    assert config["hparams"] == {"channels": 4}
    assert config["sha256"] == hashlib.sha256((out / "model.safetensors").read_bytes()).hexdigest()
    assert config["num_parameters"] == TINY_PARAMETERS
    assert config["conventions"]["frames"] is None and config["conventions"]["size_multiple"] == 1
    card = (out / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: hdrzoo")
    assert f"# {TINY}" in card and config["sha256"] in card and f"{TINY_PARAMETERS:,}" in card
    with safe_open(str(out / "model.safetensors"), "pt") as f:
        assert sorted(f.keys()) == sorted(original.net.state_dict())
        assert f.metadata()["model"] == TINY

    loaded = load(f"local-dir:{out}")
    assert not loaded.training
    assert loaded.registry_name == TINY
    assert_same_network(loaded, original)
    # The name may be given too, and must then agree with the config.
    assert_same_network(load(TINY, weights=f"local-dir:{out}"), original)


def test_export_keeps_non_default_hyper_parameters(tiny, tmp_path):
    original = trained_tiny(channels=7)
    loaded = load(f"local-dir:{export(original, tmp_path / 'wide')}")
    assert loaded.net.encode.out_channels == 7
    assert_same_network(loaded, original)


def test_load_overrides_replace_stored_hyper_parameters(tiny, tmp_path):
    out = export(trained_tiny(channels=5), tmp_path / "five")
    # Overrides win over config.json; here they change a shape, so the weights no longer fit.
    with pytest.raises(WeightsError, match=r"encode\.weight"):
        load(f"local-dir:{out}", channels=3)


def test_weights_of_another_model_raise_model_error(tiny, tmp_path):
    out = export(trained_tiny(), tmp_path / "export")
    with pytest.raises(ModelError, match=f"{TINY}.*not '{TINY_TAGGED}'"):
        load(TINY_TAGGED, weights=f"local-dir:{out}")


def test_local_dir_problems_raise_weights_error(tiny, tmp_path):
    with pytest.raises(WeightsError, match="does not exist"):
        load(f"local-dir:{tmp_path / 'missing'}")
    out = export(trained_tiny(), tmp_path / "export")
    (out / "model.safetensors").unlink()
    with pytest.raises(WeightsError, match="model.safetensors is missing"):
        load(f"local-dir:{out}")
    (out / "config.json").unlink()
    with pytest.raises(WeightsError, match="no config.json"):
        load(f"local-dir:{out}")


def test_truncated_file_on_disk_is_caught_by_checksum_then_by_safetensors(tiny, tmp_path):
    out = export(trained_tiny(), tmp_path / "export")
    weights = out / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(WeightsError, match="corrupted or truncated"):
        load(f"local-dir:{out}")
    # With a config that agrees with the damaged file, safetensors itself refuses it.
    config = json.loads((out / "config.json").read_text())
    config["sha256"] = hashlib.sha256(weights.read_bytes()).hexdigest()
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        load(f"local-dir:{out}")


# ---------------------------------------------------------------------- Hub ------
def test_hf_hub_load_equals_original_and_fetches_only_config_and_safetensors(hub, tmp_path):
    original = trained_tiny()
    commit = publish(hub, original)
    cache = tmp_path / "cache"

    loaded = load(f"hf-hub:org/tiny@{commit}", cache_dir=cache)
    assert_same_network(loaded, original)
    assert (
        loaded.weights_config["sha256"]
        == hashlib.sha256((hub.root / "org/tiny/model.safetensors").read_bytes()).hexdigest()
    )
    assert requested_files(hub) == {"config.json", "model.safetensors"}
    snapshot = cache / "models--org--tiny" / "snapshots" / commit
    assert (snapshot / "model.safetensors").is_file()

    # By branch: the cached blob is reused, the weights are not downloaded again.
    assert_same_network(load("hf-hub:org/tiny@main", cache_dir=cache), original)
    assert_same_network(load("hf-hub:org/tiny", cache_dir=cache), original)
    assert hub.count("GET", "model.safetensors") == 1


def test_hf_hub_uses_default_cache_when_no_cache_dir(hub, tmp_path):
    original = trained_tiny()
    publish(hub, original)
    assert_same_network(load("hf-hub:org/tiny"), original)
    # serve_hub moved the default cache under tmp_path.
    assert list((tmp_path / "hf_home" / "hub").glob("models--org--tiny/snapshots/*/config.json"))


def test_hf_hub_follows_a_moved_branch_to_new_weights(hub, tmp_path):
    first, second = trained_tiny(seed=1), trained_tiny(seed=2)
    publish(hub, first)
    cache = tmp_path / "cache"
    assert_same_network(load("hf-hub:org/tiny", cache_dir=cache), first)
    publish(hub, second)
    assert_same_network(load("hf-hub:org/tiny", cache_dir=cache), second)


def test_branch_moving_between_config_and_weights_still_pairs_them(hub, tmp_path):
    first, second = trained_tiny(seed=1), trained_tiny(channels=5, seed=2)
    publish(hub, first)

    def push_second_after_config(method: str, path: str) -> None:
        if method == "GET" and path.endswith("/config.json"):
            hub.after_request = None
            publish(hub, second)

    hub.after_request = push_second_after_config
    # config.json comes from the first commit; its weights must too, not the new main's.
    assert_same_network(load("hf-hub:org/tiny", cache_dir=tmp_path / "cache"), first)
    assert_same_network(load("hf-hub:org/tiny", cache_dir=tmp_path / "cache2"), second)


@pytest.mark.parametrize("how", ["env", "constant"])
def test_offline_second_load_comes_from_cache_without_requests(hub, tmp_path, monkeypatch, how):
    original = trained_tiny()
    publish(hub, original)
    cache = tmp_path / "cache"
    load("hf-hub:org/tiny", cache_dir=cache)
    before = len(hub.requests)

    if how == "env":  # set after huggingface_hub was imported: hdrzoo must read it itself
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    else:  # set before import, as huggingface_hub stores it
        import huggingface_hub.constants as hf_constants

        monkeypatch.setattr(hf_constants, "HF_HUB_OFFLINE", True)
    assert_same_network(load("hf-hub:org/tiny", cache_dir=cache), original)
    assert len(hub.requests) == before


def test_unreachable_hub_falls_back_to_the_cache(hub, tmp_path):
    original = trained_tiny()
    publish(hub, original)
    load("hf-hub:org/tiny", cache_dir=tmp_path / "cache")
    hub.stop()
    assert_same_network(load("hf-hub:org/tiny", cache_dir=tmp_path / "cache"), original)
    with pytest.raises(WeightsError, match="Hub cannot be reached"):
        load("hf-hub:org/tiny", cache_dir=tmp_path / "empty")


def test_offline_with_empty_cache_says_how_to_fix(hub, tmp_path, monkeypatch):
    publish(hub, trained_tiny())
    set_offline(monkeypatch)
    with pytest.raises(WeightsError) as info:
        load("hf-hub:org/tiny", cache_dir=tmp_path / "empty")
    message = str(info.value)
    assert "not in the local cache" in message
    assert "HF_HUB_OFFLINE" in message and "local-dir:" in message
    assert hub.requests == []


def test_corrupted_download_is_refused_and_dropped_from_the_cache(hub, tmp_path):
    original = trained_tiny()
    publish(hub, original)
    cache = tmp_path / "cache"
    hub.corrupt.add("model.safetensors")
    with pytest.raises(WeightsError, match="corrupted") as info:
        load("hf-hub:org/tiny", cache_dir=cache)
    assert "nothing was loaded" in str(info.value)
    # The damaged blob (cached under the genuine sha256, as huggingface_hub names it) is gone.
    genuine = hashlib.sha256((hub.root / "org/tiny/model.safetensors").read_bytes()).hexdigest()
    assert (cache / "models--org--tiny" / "blobs").is_dir()
    assert not list(cache.rglob(f"blobs/{genuine}"))
    assert not list(cache.rglob("snapshots/*/model.safetensors"))

    # Once the transfer is healthy again, the next load downloads afresh and succeeds.
    hub.corrupt.clear()
    assert_same_network(load("hf-hub:org/tiny", cache_dir=cache), original)
    assert hub.count("GET", "model.safetensors") == 2


def test_corrupted_config_download_is_dropped_from_the_cache(hub, tmp_path):
    original = trained_tiny()
    publish(hub, original)
    cache = tmp_path / "cache"
    hub.corrupt.add("config.json")
    with pytest.raises(WeightsError, match="config.json is not valid JSON.*removed from the"):
        load("hf-hub:org/tiny", cache_dir=cache)
    hub.corrupt.clear()
    assert_same_network(load("hf-hub:org/tiny", cache_dir=cache), original)


def test_truncated_download_raises_weights_error_and_leaves_no_partial_file(
    hub, tmp_path, monkeypatch
):
    # serve_hub made huggingface_hub's five 1 s pauses between resume attempts instant.
    original = trained_tiny()
    publish(hub, original)
    cache = tmp_path / "cache"
    hub.truncate.add("model.safetensors")
    with pytest.raises(WeightsError, match="could not download model.safetensors"):
        load("hf-hub:org/tiny", cache_dir=cache)
    assert hub.count("GET", "model.safetensors") > 1  # it did try to resume
    assert not [p for p in cache.rglob("*") if p.is_file() and "safetensors" in p.name]
    assert not list(cache.rglob("*.incomplete"))

    hub.truncate.clear()
    assert_same_network(load("hf-hub:org/tiny", cache_dir=cache), original)


def test_hub_errors_become_weights_errors(hub, tmp_path):
    publish(hub, trained_tiny())
    cache = tmp_path / "cache"
    with pytest.raises(WeightsError, match="could not download config.json"):
        load("hf-hub:org/nothing", cache_dir=cache)
    with pytest.raises(WeightsError, match="could not download config.json"):
        load("hf-hub:org/tiny@no-such-branch", cache_dir=cache)
    (hub.root / "org/tiny/model.safetensors").unlink()
    with pytest.raises(WeightsError, match="could not download model.safetensors"):
        load("hf-hub:org/tiny", cache_dir=cache)
    with pytest.raises(WeightsError, match="expected hf-hub:org/name"):
        load("hf-hub:no-slash", cache_dir=cache)


def test_hub_weights_of_another_model_raise_model_error(hub, tmp_path):
    commit = publish(hub, trained_tiny())
    with pytest.raises(ModelError, match=f"'{TINY}', not '{TINY_TAGGED}'"):
        load(TINY_TAGGED, weights=f"hf-hub:org/tiny@{commit}", cache_dir=tmp_path / "cache")


def test_pretrained_tag_resolves_to_its_hub_repository(hub, tmp_path):
    original = randomize(create_model(TINY_TAGGED), seed=3).eval()
    commit = publish(hub, original, "org/tiny6")
    register_tiny_models(hub_id="org/tiny6", revision=commit)
    cache = tmp_path / "cache"

    by_flag = load(TINY_TAGGED, pretrained=True, cache_dir=cache)
    by_tag = load(f"{TINY_TAGGED}.demo", cache_dir=cache)
    for module in (by_flag, by_tag):
        assert module.weight_tag == "demo"
        assert module.net.encode.out_channels == 6
        assert_same_network(module, original)
    assert f"{TINY_TAGGED}.demo" in list_models(pretrained=True)

    # Re-exported, the tag and its licence travel with the weights.
    config = json.loads((export(by_tag, tmp_path / "again") / "config.json").read_text())
    assert config["tag"] == "demo" and config["licence"] == "CC0-1.0"


# ------------------------------------------------------------- single files -----
def test_safetensors_file_needs_a_model_name(tiny, tmp_path):
    original = trained_tiny()
    path = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in original.net.state_dict().items()}, str(path))
    assert_same_network(load(TINY, weights=path), original)
    assert_same_network(load(TINY, weights=str(path)), original)
    with pytest.raises(ModelError, match="say which model"):
        load(str(path))
    with pytest.raises(WeightsError, match="does not exist"):
        load(TINY, weights=tmp_path / "nothing.safetensors")
    with pytest.raises(ModelError, match="not both"):
        load(str(path), weights=str(path))


def test_foreign_checkpoint_is_converted_by_the_module(tiny, tmp_path):
    original = trained_tiny()
    official = {"model": {f"module.{k}": v for k, v in original.net.state_dict().items()}}
    path = tmp_path / "official.pth"
    torch.save(official, path)
    assert_same_network(load(TINY, weights=path), original)

    torch.save({"something": "else"}, tmp_path / "other.pth")
    with pytest.raises(WeightsError, match="not a checkpoint TinyModule can convert"):
        load(TINY, weights=tmp_path / "other.pth")
    torch.save(official, tmp_path / "classic.pth")
    with pytest.raises(WeightsError, match="cannot convert foreign checkpoints"):
        load("classic", weights=tmp_path / "classic.pth")


def test_load_weights_into_reads_every_single_file_kind_into_an_existing_module(tiny, tmp_path):
    original = trained_tiny()
    state = {k: v.contiguous() for k, v in original.net.state_dict().items()}
    save_file(state, str(tmp_path / "net.safetensors"))
    torch.save({"state_dict": {f"net.{k}": v for k, v in state.items()}}, tmp_path / "run.ckpt")
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "foreign.pth")
    for name in ("net.safetensors", "run.ckpt", "foreign.pth"):
        module = create_model(TINY)
        load_weights_into(module, tmp_path / name)
        assert_same_network(module, original)

    del state["decode.bias"]
    save_file(state, str(tmp_path / "partial.safetensors"))
    with pytest.raises(WeightsError, match=r"partial\.safetensors.*missing 1"):
        load_weights_into(create_model(TINY), tmp_path / "partial.safetensors")
    with pytest.raises(WeightsError, match="does not exist"):
        load_weights_into(create_model(TINY), tmp_path / "absent.ckpt")


def test_init_weights_are_read_through_hub_when_a_trainer_sets_up(tiny, tmp_path):
    original = trained_tiny()
    save_file(
        {k: v.contiguous() for k, v in original.net.state_dict().items()},
        str(tmp_path / "w.safetensors"),
    )
    module = create_model(TINY)
    module.use_init_weights(str(tmp_path / "w.safetensors"))
    assert not torch.equal(module.net.encode.weight, original.net.encode.weight)  # nothing read yet
    module.setup("fit")
    assert_same_network(module, original)


def _fit_tiny(root: Path) -> tuple[TinyModule, dict[str, torch.Tensor], Path]:
    import lightning as L

    module = create_model(TINY)
    initial = {k: v.clone() for k, v in module.net.state_dict().items()}
    batch = random_batch(batch=4)
    samples = [{k: v[i] for k, v in batch.items()} for i in range(4)]
    trainer = L.Trainer(
        max_steps=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=True,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
    )
    trainer.fit(module, torch.utils.data.DataLoader(samples, batch_size=2))
    (ckpt,) = (root / "checkpoints").glob("*.ckpt")
    return module, initial, ckpt


@pytest.mark.filterwarnings("ignore:.*(num_workers|does not have many workers).*")
def test_lightning_checkpoint_rebuilds_the_model_without_a_name(tiny, tmp_path):
    trained, initial, ckpt = _fit_tiny(tmp_path / "run")
    stored = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert stored["hdrzoo"] == {"model": TINY}
    assert stored["global_step"] == 2

    loaded = load(ckpt)  # a Path works as well as a str
    assert isinstance(loaded, TinyModule) and not loaded.training
    assert_same_network(loaded, trained.eval())
    for key, value in stored["state_dict"].items():
        assert torch.equal(loaded.net.state_dict()[key.removeprefix("net.")], value)
    # Two optimiser steps moved the weights: this is the trained network, not a fresh one.
    assert not torch.equal(loaded.net.encode.weight, initial["encode.weight"])
    assert_same_network(load(TINY, weights=ckpt), trained)
    with pytest.raises(ModelError, match="checkpoint, not"):
        load(TINY_TAGGED, weights=ckpt)

    # export() takes the checkpoint path directly.
    out = export(ckpt, tmp_path / "export")
    assert json.loads((out / "config.json").read_text())["model"] == TINY
    assert_same_network(load(f"local-dir:{out}"), trained)

    # LightningCLI stores '_instantiator'/'_class_path' among the hyper-parameters; older
    # checkpoints have no 'hdrzoo' entry and need the name.
    stored["hyper_parameters"] |= {
        "_instantiator": "lightning.pytorch.cli.instantiate_module",
        "_class_path": "tests._tiny_model.TinyModule",
    }
    del stored["hdrzoo"]
    torch.save(stored, tmp_path / "cli.ckpt")
    with pytest.raises(ModelError, match="does not say which model"):
        load(str(tmp_path / "cli.ckpt"))
    assert_same_network(load(TINY, weights=tmp_path / "cli.ckpt"), trained)


def test_checkpoint_that_is_not_lightnings_is_refused(tiny, tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "plain.ckpt")
    with pytest.raises(WeightsError, match="not a Lightning checkpoint"):
        load(TINY, weights=tmp_path / "plain.ckpt")


# ------------------------------------------------------------------ strictness ---
def _write_state(path: Path, state: dict[str, torch.Tensor]) -> Path:
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def test_missing_tensor_is_an_error_when_strict_and_a_warning_otherwise(tiny, tmp_path):
    original = trained_tiny()
    state = dict(original.net.state_dict())
    del state["decode.bias"]
    path = _write_state(tmp_path / "partial.safetensors", state)

    with pytest.raises(WeightsError, match=r"missing 1: \['decode\.bias'\]"):
        load(TINY, weights=path)
    with pytest.warns(UserWarning, match=r"decode\.bias"):
        loaded = load(TINY, weights=path, strict=False)
    for key, value in state.items():
        assert torch.equal(loaded.net.state_dict()[key], value), key
    assert not torch.equal(loaded.net.decode.bias, original.net.decode.bias)


def test_unexpected_tensor_is_an_error_when_strict(tiny, tmp_path):
    original = trained_tiny()
    state = {**original.net.state_dict(), "extra.weight": torch.ones(3)}
    path = _write_state(tmp_path / "extra.safetensors", state)
    with pytest.raises(WeightsError, match=r"unexpected 1: \['extra\.weight'\]"):
        load(TINY, weights=path)
    with pytest.warns(UserWarning, match=r"extra\.weight"):
        assert_same_network(load(TINY, weights=path, strict=False), original)


def test_shape_mismatch_is_an_error_even_when_not_strict(tiny, tmp_path):
    state = dict(trained_tiny().net.state_dict())
    state["encode.weight"] = torch.zeros(5, 3, 3, 3)
    path = _write_state(tmp_path / "shape.safetensors", state)
    for strict in (True, False):
        with pytest.raises(WeightsError, match=r"encode\.weight \(5, 3, 3, 3\) vs \(4, 3, 3, 3\)"):
            load(TINY, weights=path, strict=strict)


# ------------------------------------------------------------ names and tags -----
def test_pretrained_without_published_weights_says_how_to_get_some(tiny):
    with pytest.raises(WeightsError) as info:
        load(TINY, pretrained=True)
    message = str(info.value)
    assert "no published weights" in message
    assert "hdrzoo fit" in message and "weights=" in message


def test_tag_that_is_not_on_the_hub_says_where_the_original_is(tiny):
    with pytest.raises(WeightsError) as info:
        load(f"{TINY_TAGGED}.authors")
    assert "tiny_authors.pth" in str(info.value) and "weights=" in str(info.value)
    with pytest.raises(ModelError, match=f"known tags: {TINY_TAGGED}.demo, {TINY_TAGGED}.authors"):
        load(f"{TINY_TAGGED}.nope")


def test_parameter_free_model_needs_no_weights():
    classic = load("classic", pretrained=True)
    assert sum(p.numel() for p in classic.parameters()) == 0 and not classic.training
    assert type(load("classic")) is type(classic)


def test_name_without_weights_gives_random_weights_in_eval_mode(tiny):
    first, second = load(TINY), load(TINY)
    assert isinstance(first, TinyModule) and not first.training
    assert not torch.equal(first.net.encode.weight, second.net.encode.weight)


def test_list_models_filters_by_pattern_and_published_weights(tiny):
    names = list_models()
    assert names == sorted(names)
    assert {"classic", TINY, TINY_TAGGED} <= set(names)
    assert list_models("tiny_t*") == [TINY_TAGGED, TINY]
    saf = list_models("saf*")
    assert saf == [n for n in names if n.startswith("saf")]
    assert "classic" not in saf
    assert list_models("no_such_*") == []
    # tiny_tagged.demo has no hub_id in this registration, tiny_tagged.authors never has one.
    published = list_models(pretrained=True)
    assert not any(p.startswith(("tiny_", "classic")) for p in published)
    register_tiny_models(hub_id="org/tiny6")
    assert f"{TINY_TAGGED}.demo" in list_models(pretrained=True)
    assert f"{TINY_TAGGED}.authors" not in list_models(pretrained=True)
    assert hdrzoo.list_models is list_models


def test_unknown_model_lists_the_available_names(tiny):
    with pytest.raises(ModelError) as info:
        load("no_such_model")
    message = str(info.value)
    assert "'no_such_model'" in message and "classic" in message and TINY in message
    assert "hdrzoo models" in message


def test_unusable_device_raises_model_error(tiny):
    with pytest.raises(ModelError, match="device="):
        load(TINY, device="no-such-device")


def test_export_refuses_what_it_cannot_write(tiny, tmp_path):
    with pytest.raises(ModelError, match="not a model of the zoo"):
        export(torch.nn.Linear(2, 2), tmp_path / "x")
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(WeightsError, match="cannot create export folder"):
        export(trained_tiny(), blocker / "sub")


def test_export_overwrites_a_previous_export(tiny, tmp_path):
    out = tmp_path / "export"
    export(trained_tiny(seed=1), out)
    second = trained_tiny(seed=2)
    export(second, out)
    assert_same_network(load(f"local-dir:{out}"), second)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary leftovers
