# ImageNet-1K-style pretraining of the backbone (paper §III-A). The embedded default pretrains on
# scikit-learn's bundled handwritten digits (real images, offline) to exercise the same code path.


rule pretrain_digits:
    output:
        directory(f"{RESULTS}/pretrain/digits"),
    log:
        f"{RESULTS}/logs/pretrain_digits.log",
    conda:
        "../envs/au_ttt.yaml"
    params:
        config=RESOLVED_CONFIG,
    shell:
        "au-ttt pretrain --config {params.config} --make-digits {output} > {log} 2>&1"


rule pretrain:
    input:
        data=get_pretrain_data(),
        code=code("model/*.py", "train/pretrain.py"),
    output:
        f"{RESULTS}/pretrain/backbone.safetensors",
    log:
        f"{RESULTS}/logs/pretrain.log",
    conda:
        "../envs/au_ttt.yaml"
    params:
        config=RESOLVED_CONFIG,
        out=get_output_dir,
        settings=section_params("model", "pretrain"),
    threads: 2
    resources:
        gpu=GPU,
    shell:
        "OMP_NUM_THREADS={threads} au-ttt pretrain --config {params.config} --data-root {input.data} "
        "--out {params.out} > {log} 2>&1"
