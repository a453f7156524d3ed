"""Same-protocol baselines (timm ViT / ResNet, the HOG + LR probe as a run) and what MLflow records of a run.

Known answers: a timm file loads tensor for tensor (the ViT's position table resampled, the classifier
fresh), a file of another architecture is refused naming keys; a model without heatmaps trains on the loss
without its heatmap term; the probe's fold writes what the tables read, and the tables' reader recomputes
its F1 exactly; a training run's MLflow record holds its frame index as a dataset input (digest = the index
file's SHA-256, source, schema), its logged model carries the final scores, and `au-ttt export --register`
puts it in the model registry under an alias.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil

import numpy as np
import pytest
import torch
import yaml
from conftest import REPO
from runkit import synth_bp4d

from au_ttt.cli import main
from au_ttt.errors import InputError
from au_ttt.losses import AULoss
from au_ttt.model.au_ttt import AUTTT
from au_ttt.model.baselines import TimmAUModel, build_model, load_timm_weights
from au_ttt.settings import load_settings
from au_ttt.train.probe import ProbeFit


@pytest.fixture(scope="module")
def demo():
    return load_settings(REPO / "config/config.yaml")


def test_baselines_build_from_the_demo_config(demo, one_torch_thread):
    x, masks = torch.randn(2, 3, 64, 64), torch.rand(2, 12, 4, 4)
    for variant, net in (("timm_vit", "VisionTransformer"), ("timm_resnet", "ResNet")):
        model = build_model(demo.model_for(variant), 12)
        assert isinstance(model, TimmAUModel) and type(model.net).__name__ == net
        out = model(x, masks)
        assert out.logits.shape == (2, 12) and out.heatmaps is None
    assert isinstance(build_model(demo.model_for("au_roi_ttt"), 12), AUTTT)
    vit = build_model(demo.model_for("timm_vit"), 12).net
    assert (vit.patch_embed.proj.kernel_size, vit.embed_dim, len(vit.blocks)) == ((16, 16), 64, 2)
    resnet = build_model(demo.model_for("timm_resnet"), 12).net
    assert resnet.fc.in_features == 128 and resnet.layer1[0].conv1.out_channels == 16   # quarter-width stages
    with pytest.raises(ValueError, match="plain timm baseline"):
        dataclasses.replace(demo.model_for("timm_vit"), au_roi=True)


def test_timm_files_load_tensor_for_tensor_or_are_refused(demo, tmp_path, one_torch_thread):
    import timm
    from safetensors.torch import save_file

    # a ViT of the same width and depth at 32 px (2x2 patches) with a 1000-class head, as a timm file would be
    source = timm.create_model("vit_small_patch16_224", img_size=32, embed_dim=64, depth=2, num_heads=2)
    path = tmp_path / "vit.safetensors"
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(path))
    model = build_model(demo.model_for("timm_vit"), 12)
    head = model.net.head.weight.clone()
    assert "tensors from timm vit_small_patch16_224" in load_timm_weights(model, path)
    assert torch.equal(model.net.blocks[1].attn.qkv.weight, source.blocks[1].attn.qkv.weight)
    assert model.net.pos_embed.shape == (1, 1 + 16, 64)                       # resampled from 1 + 4 rows
    assert torch.equal(model.net.pos_embed[:, 0], source.pos_embed[:, 0])     # the CLS row moves unchanged
    assert torch.equal(model.net.head.weight, head)                           # the AU head stays fresh

    resnet_file = tmp_path / "resnet.pth"
    r18 = timm.create_model("resnet18", channels=(16, 32, 64, 128))
    torch.save({"state_dict": r18.state_dict()}, resnet_file)
    resnet = build_model(demo.model_for("timm_resnet"), 12)
    load_timm_weights(resnet, resnet_file)
    assert torch.equal(resnet.net.layer4[1].conv2.weight, r18.layer4[1].conv2.weight)
    with pytest.raises(InputError, match=r"does not fit the vit baseline.*missing: blocks\.0"):
        load_timm_weights(build_model(demo.model_for("timm_vit"), 12), resnet_file)


def test_loss_without_heatmaps_is_the_classification_terms(demo):
    rates = np.array([0.3, 0.5, 0.2])
    loss = AULoss(demo.loss, "bp4d", rates)
    logits, targets = torch.randn(4, 3), torch.tensor([[1.0, 0, -1], [0, 1, 1], [1, 1, 0], [0, 0, 1]])
    parts = loss(logits, None, targets, torch.zeros(4, 3, 4, 4))
    assert parts["mse"].item() == 0.0
    assert parts["total"].item() == pytest.approx(parts["mdwa"].item() + parts["wdi"].item())


def test_probe_fit_round_trips_without_pickle(tmp_path):
    from au_ttt.train.probe import fit

    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6))
    y = np.stack([(x[:, 0] > 0).astype(np.int8), np.zeros(40, np.int8)], 1)   # AU 2 never occurs: constant 0
    y[3, 0] = -1
    model = fit(x, y)
    p = model.probs(x)
    assert ((p[:, 0] >= 0.5) == (x[:, 0] > 0)).mean() > 0.9 and (p[:, 1] == 0).all()
    model.save(tmp_path / "probe.npz", {"dataset": "bp4d"})
    again, meta = ProbeFit.load(tmp_path / "probe.npz")
    assert meta == {"dataset": "bp4d"} and np.array_equal(again.probs(x), p)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """A small SynthAU BP4D through the real data commands, and a config whose MLflow store is private."""
    tmp = tmp_path_factory.mktemp("baselines")
    cfg = yaml.safe_load((REPO / "config/config.yaml").read_text())
    cfg["tracking"]["uri_dir"] = str(tmp / "mlflow")
    cfg["train"].update(epochs=1, threads=1)
    config = tmp / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    d = synth_bp4d(tmp, config, bp4d_frames=10, disfa_frames=2)

    def au_ttt(*args):
        assert main([*map(str, args)]) == 0, args

    paths = ["--index", d / "index.parquet", "--crops", d / "crops", "--heatmaps", d / "heatmaps"]
    return {"tmp": tmp, "config": config, "paths": paths, "au_ttt": au_ttt, "index": d / "index.parquet"}


def _client(data):
    from mlflow import MlflowClient

    from au_ttt.train.tracking import TrackingConfig, tracking_uri

    return MlflowClient(tracking_uri=tracking_uri(TrackingConfig(uri_dir=str(data["tmp"] / "mlflow"))))


def test_probe_fold_is_a_table_row(data, one_torch_thread):
    from au_ttt.tables.collect import read_run
    from au_ttt.tables.uncertainty import read_counts

    out = data["tmp"] / "probe"
    data["au_ttt"]("probe", "--config", data["config"], "--dataset", "bp4d", "--test-part", 1, *data["paths"],
                   "--out", out)
    run = read_run(out)
    assert run.variant == "hog_lr" and run.epoch_policy.startswith("closed-form") and run.seed == 0
    counts = read_counts(out, [int(a[2:]) for a in run.f1], run.f1, "")   # raises unless F1 agrees exactly
    assert len(counts.subjects) == 2                                     # the two subjects of part 1
    tracked = json.loads((out / "tracking.json").read_text())
    assert tracked["parent"] == "baselines/bp4d/hog_lr" and tracked["inputs"][0]["context"] == "training"


def test_probe_refuses_a_folder_another_process_writes(data, capsys):
    """`au-ttt probe` holds its --out like `au-ttt train`: a second writer exits 2 before fitting anything."""
    from au_ttt.locks import run_dir_lock

    out = data["tmp"] / "probe-locked"
    with run_dir_lock(out):
        args = ["probe", "--config", data["config"], "--dataset", "bp4d", "--test-part", 1, *data["paths"],
                "--out", out]
        assert main([*map(str, args)]) == 2
    assert "another process is writing this folder" in capsys.readouterr().err and not out.exists()


@pytest.fixture(scope="module")
def vit_run(data):
    """One epoch of the timm ViT baseline on fold 2, seed 5."""
    out = data["tmp"] / "vit"
    data["au_ttt"]("train", "--config", data["config"], "--dataset", "bp4d", "--test-part", 2, "--variant",
                   "timm_vit", *data["paths"], "--pretrained", "none", "--seed", 5, "--out", out, "--device", "cpu",
                   "--no-progress")
    return out


def test_training_run_records_its_dataset_and_logged_model(data, vit_run):
    out = vit_run
    tracked = json.loads((out / "tracking.json").read_text())
    client = _client(data)
    run = client.get_run(tracked["mlflow"]["run_id"])
    assert run.info.run_name == "bp4d-test2-timm_vit-seed5" and run.data.tags["seed"] == "5"
    (entry,) = run.inputs.dataset_inputs
    digest = hashlib.sha256(data["index"].read_bytes()).hexdigest()[:32]
    assert entry.dataset.name == "bp4d-frame-index" and entry.dataset.digest == digest
    assert str(data["index"].resolve()) in entry.dataset.source
    assert {c["name"] for c in json.loads(entry.dataset.schema)["mlflow_colspec"]} >= {"subject", "part", "AU1"}
    assert {t.key: t.value for t in entry.tags} == {"mlflow.data.context": "training",
                                                    "au_ttt.fold": "train parts 1+3, test part 2"}
    (model_out,) = run.outputs.model_outputs
    model = client.get_logged_model(model_out.model_id)
    scores = {m.key: m for m in model.metrics}
    f1 = json.loads((out / "metrics.json").read_text())["f1_mean"]
    assert scores["final_f1_mean"].value == pytest.approx(f1) and scores["final_f1_mean"].dataset_digest == digest

    data["au_ttt"]("export", out, "--out", data["tmp"] / "bundle", "--config", data["config"], "--mlflow-run", "auto",
                   "--register", "au-ttt-vit-test", "--alias", "champion")
    version = client.get_model_version_by_alias("au-ttt-vit-test", "champion")
    assert version.run_id == run.info.run_id and str(version.version) == "1"
    # an alias names a registered version: without --register the command stops before writing anything
    assert main(["export", str(out), "--out", str(data["tmp"] / "b2"), "--alias", "x"]) == 2


def test_baseline_bundle_passes_the_shape_guard(data, vit_run):
    """A timm baseline's bundle loads through the record-vs-header check; an edited record is refused before
    the model is built (the check covers every architecture build_model makes, not only AU-TTT)."""
    from au_ttt.predict.bundle import load_bundle

    bundle, edited = data["tmp"] / "vit-bundle", data["tmp"] / "vit-bundle-edited"
    data["au_ttt"]("export", vit_run, "--out", bundle, "--config", data["config"])
    assert isinstance(load_bundle(bundle).model, TimmAUModel)
    shutil.copytree(bundle, edited)
    rec = json.loads((edited / "bundle.json").read_text())
    rec["model"]["depth"] += 1
    (edited / "bundle.json").write_text(json.dumps(rec))
    with pytest.raises(InputError, match="does not match its weights") as err:
        load_bundle(edited)
    assert f"first 'net.blocks.{rec['model']['depth'] - 1}." in str(err.value)   # the key the record adds
