"""Operations per forward and per training step of AU-TTT ViT-S/16 on the CUDA path (the Triton scan), counted on
a CPU: the Triton kernels run in Triton's interpreter (TRITON_INTERPRET=1, set before anything imports triton),
and each kernel launch is one operation to the dispatcher (``au_ttt::ttt_scan_forward`` / ``…_backward``), so the
count is what a GPU launches per step. Prints one JSON line per model.

Usage: python scripts/count_ops_cuda_path.py [--size 224] [--batch 4]
"""

import argparse
import json
import os

os.environ["TRITON_INTERPRET"] = "1"

import torch

from au_ttt.bench import _build, _steps
from au_ttt.model.layers import set_scan_backend
from au_ttt.model.opcount import count_ops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(1)
    for name, backend in (("au_ttt_vit_s16", "triton"), ("au_ttt_vit_s16", "eager"), ("timm_vit_s16", None)):
        model, fwd = _build(name, args.size, 12, torch.device("cpu"))
        if backend:
            set_scan_backend(model, backend)
        steps = _steps(model, fwd, torch.randn(args.batch, 3, args.size, args.size), "none")
        row = {"model": name, "scan_backend": backend, "img_size": args.size, "batch": args.batch}
        for mode, step in steps.items():
            c = count_ops(step)
            row.update({f"ops_{mode}": c.ops, f"matmul_ops_{mode}": c.matmul_ops, f"view_ops_{mode}": c.view_ops,
                        f"triton_launches_{mode}": sum(v for k, v in c.by_name.items() if k.startswith("ttt_scan"))})
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
