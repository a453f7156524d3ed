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
    conda:
        "../envs/au_ttt.yaml"
    params:
        config=RESOLVED_CONFIG,
        out=f"{RESULTS}/runs/{{dataset}}/{{init}}/{{variant}}/test{{part}}",
        pretrained=get_pretrained_arg,
        parent=get_parent_name,
        settings=get_train_params,
    threads: 1
    resources:
        gpu=GPU,
    shell:
        "OMP_NUM_THREADS={threads} au-ttt train --config {params.config} --dataset {wildcards.dataset} "
        "--test-part {wildcards.part} --variant {wildcards.variant} --index {input.index} --crops {input.crops} "
        "--heatmaps {input.heatmaps} {params.pretrained} --out {params.out} --parent {params.parent} "
        "--threads {threads} --resume --no-progress > {log} 2>&1"
