"""Package a trained run as a self-describing model bundle for `au-ttt predict --model` and for sharing.

The bundle folder holds model.safetensors (the run's final weights), bundle.json (their SHA-256, the
resolved model config, AU list and dataset, thresholds, input normalisation, crop/heatmap/landmark
settings and provenance: git commit, data manifest hash, F1 on the test fold) and a generated README.md
model card. Loading refuses a bundle whose checksum fails or whose config does not match its weights.
With --mlflow-run, the bundle is also logged to that MLflow run as a pyfunc model ("model"), so
mlflow.pyfunc.load_model("runs:/<id>/model").predict(DataFrame of image paths) returns AU probabilities;
--register NAME [--alias ALIAS] also registers it in the model registry (models:/NAME@ALIAS).
"""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "write a trained run as a self-describing model bundle (weights + checksum + config + provenance)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="run directory from `au-ttt train --out`")
    parser.add_argument("--out", required=True, type=Path, help="bundle folder to write")
    parser.add_argument("--config", type=Path, default=None,
                        help="the config the run was trained with (only if the run does not record its crop and "
                        "heatmap settings); its tracking section names the store --mlflow-run logs to "
                        "(default: the store RUN_DIR/tracking.json recorded)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--mlflow-run", default=None, metavar="RUN_ID",
                        help="also log the bundle as an MLflow pyfunc model to this existing run "
                        "('auto': the run recorded in RUN_DIR/tracking.json)")
    parser.add_argument("--register", metavar="NAME", help="with --mlflow-run: also register the logged model in "
                        "the store's model registry as a new version of NAME")
    parser.add_argument("--alias", help="with --register: point this alias (e.g. 'champion') at the new version")


def run(args: argparse.Namespace) -> int:
    from au_ttt.errors import InputError
    from au_ttt.predict.bundle import export_bundle, load_bundle

    if (args.register or args.alias) and not args.mlflow_run:
        raise InputError("--register/--alias register the model logged by --mlflow-run: add --mlflow-run auto")
    if args.alias and not args.register:
        raise InputError("--alias names a version of a registered model: add --register NAME")
    out = export_bundle(args.run_dir, args.out, args.config, overwrite=args.overwrite)
    loaded = load_bundle(out)    # proves the bundle loads: checksum and config ↔ weights
    prov = loaded.record["provenance"]
    f1 = prov.get("f1_mean")
    print(f"{args.run_dir} → {out}: {loaded.dataset} AUs {list(loaded.aus)}, weights sha256 "
          f"{loaded.record['weights']['sha256'][:16]}…, test-fold F1 {f1 if f1 is None else round(f1, 3)}")
    if args.mlflow_run:
        from au_ttt.predict.mlflow_model import log_pyfunc_model
        from au_ttt.settings import load_settings

        cfg = load_settings(args.config).tracking if args.config else None   # None: the store tracking.json names
        run_id = None if args.mlflow_run == "auto" else args.mlflow_run
        uri = log_pyfunc_model(args.run_dir, cfg, run_id, bundle=out, register_as=args.register, alias=args.alias)
        print(f"logged as MLflow pyfunc model {uri}")
        if args.register:
            print(f"registered as models:/{args.register}" + (f"@{args.alias}" if args.alias else " (latest version)"))
    return 0
