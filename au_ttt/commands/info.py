"""Describe a model configuration: parameters, FLOPs and the branch shares of one block, per variant."""

from __future__ import annotations

import argparse

HELP = "parameter and FLOP counts of the AU-TTT model for each variant of a config"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default="config/paper.yaml", help="project config file")
    parser.add_argument("--num-aus", type=int, default=12, help="output AUs (12 = BP4D, 8 = DISFA)")
    parser.add_argument("--variant", action="append", help="variant(s) to describe (default: the model section "
                        "and every variant)")


def run(args: argparse.Namespace) -> int:
    import timm
    import torch

    from au_ttt.model.au_ttt import AUTTT
    from au_ttt.model.flops import count_flops, count_fn_flops
    from au_ttt.settings import load_settings

    settings = load_settings(args.config)
    names = args.variant or [None, *settings.variants]
    vit = timm.create_model("vit_small_patch16_224", num_classes=1000).eval()
    with torch.no_grad():
        vit_flops = count_fn_flops(lambda: vit(torch.randn(1, 3, 224, 224)))
    print(f"timm vit_small_patch16_224 (1000 classes): {sum(p.numel() for p in vit.parameters()) / 1e6:.2f} M "
          f"params, {vit_flops / 1e9:.2f} GFLOPs at 224 px (FLOPs = 2 × MACs, attention included; batch 1)")
    print(f"{'variant':<18} {'params (M)':>10} {'GFLOPs':>8} {'mixer':>6} {'MSP':>6} {'RoI':>6} {'MLP':>6}"
          "  (shares of one block)")
    for name in names:
        cfg = settings.model_for(name)
        model = AUTTT(cfg, args.num_aus).eval()
        flops = count_flops(model)
        block = max(flops["block"], 1)
        share = {k: f"{100 * flops[f'block.{k}'] / block:5.1f}%" for k in ("mixer", "msp", "roi", "mlp")}
        params = sum(p.numel() for p in model.parameters()) / 1e6
        print(f"{name or '(model)':<18} {params:>10.2f} {flops['total'] / 1e9:>8.2f} {share['mixer']:>6} "
              f"{share['msp']:>6} {share['roi']:>6} {share['mlp']:>6}")
    return 0
