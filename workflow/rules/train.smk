# One training job per (dataset, init, variant, fold): Table I uses the pretrained full model on both
# datasets, Table III the six variants from scratch on the ablation dataset.


rule train:
    input:
        unpack(get_train_inputs),
    output:
        metrics=f"{RESULTS}/runs/{{dataset}}/{{init}}/{{variant}}/test{{part}}/metrics.json",
        weights=f"{RESULTS}/runs/{{dataset}}/{{init}}/{{variant}}/test{{part}}/model.safetensors",
    log:
        f"{RESULTS}/logs/train/{{dataset}}-{{init}}-{{variant}}-test{{part}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{dataset}}-{{init}}-{{variant}}-test{{part}}.tsv",
    conda:
        "../envs/au_ttt.yaml"
    params:
        code=CODE,
        config=RESOLVED_CONFIG,
        out=f"{RESULTS}/runs/{{dataset}}/{{init}}/{{variant}}/test{{part}}",
        pretrained=get_pretrained_arg,
        parent=get_parent_name,
        settings=get_train_params,
    threads: RES["train"].threads
    resources:
        mem_mb=RES["train"].mem_mb,
        runtime=RES["train"].runtime,
        gpu=RES["train"].gpus,
    shell:
        "OMP_NUM_THREADS={threads} au-ttt train --config {params.config:q} --dataset {wildcards.dataset:q} "
        "--test-part {wildcards.part:q} --variant {wildcards.variant:q} --index {input.index:q} "
        "--crops {input.crops:q} --heatmaps {input.heatmaps:q} {params.pretrained:q} --out {params.out:q} "
        "--parent {params.parent:q} --threads {threads} --resume --no-progress > {log:q} 2>&1"
