# ImageNet-1K-style pretraining of the backbone (paper §III-A). The embedded default pretrains on
# scikit-learn's bundled handwritten digits (real images, offline) to exercise the same code path.


rule pretrain_digits:
    output:
        directory(f"{RESULTS}/pretrain/digits"),
    log:
        f"{RESULTS}/logs/pretrain_digits.log",
    conda:
        "../envs/au_ttt.yaml"
    threads: RES["pretrain_digits"].threads
    resources:
        mem_mb=RES["pretrain_digits"].mem_mb,
        runtime=RES["pretrain_digits"].runtime,
    params:
        code=CODE,
        config=RESOLVED_CONFIG,
    shell:
        "au-ttt pretrain --config {params.config:q} --make-digits {output:q} > {log:q} 2>&1"


rule pretrain:
    input:
        data=get_pretrain_data,
    output:
        f"{RESULTS}/pretrain/backbone.safetensors",
    log:
        f"{RESULTS}/logs/pretrain.log",
    benchmark:
        f"{RESULTS}/benchmarks/pretrain/pretrain.tsv"
    conda:
        "../envs/au_ttt.yaml"
    threads: RES["pretrain"].threads
    resources:
        mem_mb=RES["pretrain"].mem_mb,
        runtime=RES["pretrain"].runtime,
        gpu=RES["pretrain"].gpus,
    params:
        code=CODE,
        config=RESOLVED_CONFIG,
        out=get_output_dir,
        nproc=max(1, RES["pretrain"].gpus),
        settings=section_params("model", "pretrain"),
    # --nproc N > 1: N DDP processes (torchrun; every socket on 127.0.0.1), one GPU each where GPUs exist
    shell:
        "OMP_NUM_THREADS=$(( {threads} / {params.nproc} > 0 ? {threads} / {params.nproc} : 1 )) au-ttt pretrain "
        "--config {params.config:q} --data-root {input.data:q} --nproc {params.nproc} --out {params.out:q} "
        "> {log:q} 2>&1"
