# One training job per (dataset, init, variant, seed, fold): Table I uses the pretrained full model on both
# datasets, Table III the six variants from scratch on the ablation dataset, the baseline rows their variants
# (from scratch, or from a timm file: init "timm"); the probe is one closed-form fit per fold.


rule train:
    input:
        unpack(get_train_inputs),
    output:
        metrics=f"{RESULTS}/runs/{{dataset}}/{{init}}/{{variant}}/seed{{seed}}/test{{part}}/metrics.json",
        weights=f"{RESULTS}/runs/{{dataset}}/{{init}}/{{variant}}/seed{{seed}}/test{{part}}/model.safetensors",
        predictions=f"{RESULTS}/runs/{{dataset}}/{{init}}/{{variant}}/seed{{seed}}/test{{part}}/predictions.parquet",
        history=f"{RESULTS}/runs/{{dataset}}/{{init}}/{{variant}}/seed{{seed}}/test{{part}}/history.json",
        curves=report(
            f"{RESULTS}/runs/{{dataset}}/{{init}}/{{variant}}/seed{{seed}}/test{{part}}/curves.png",
            caption="../report/run_curves.rst",
            category="Training curves",
            subcategory="{dataset} {variant} ({init})",
            labels={"test part": "{part}", "seed": "{seed}"},
        ),
    log:
        f"{RESULTS}/logs/train/{{dataset}}-{{init}}-{{variant}}-seed{{seed}}-test{{part}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train/{{dataset}}-{{init}}-{{variant}}-seed{{seed}}-test{{part}}.tsv"
    conda:
        "../envs/au_ttt.yaml"
    threads: RES["train"].threads
    resources:
        mem_mb=RES["train"].mem_mb,
        runtime=RES["train"].runtime,
        gpu=RES["train"].gpus,
    params:
        code=CODE,
        config=RESOLVED_CONFIG,
        out=f"{RESULTS}/runs/{{dataset}}/{{init}}/{{variant}}/seed{{seed}}/test{{part}}",
        pretrained=get_pretrained_arg,
        parent=get_parent_name,
        settings=get_train_params,
    shell:
        "OMP_NUM_THREADS={threads} au-ttt train --config {params.config:q} --dataset {wildcards.dataset:q} "
        "--test-part {wildcards.part:q} --variant {wildcards.variant:q} --index {input.index:q} "
        "--crops {input.crops:q} --heatmaps {input.heatmaps:q} {params.pretrained:q} --out {params.out:q} "
        "--seed {wildcards.seed} --parent {params.parent:q} --threads {threads} --resume --no-progress > {log:q} 2>&1"


rule probe:
    input:
        index=f"{RESULTS}/data/{{dataset}}/index.parquet",
        crops=f"{RESULTS}/data/{{dataset}}/crops",
        heatmaps=f"{RESULTS}/data/{{dataset}}/heatmaps",
    output:
        metrics=f"{RESULTS}/runs/{{dataset}}/fit/{PROBE}/test{{part}}/metrics.json",
        predictions=f"{RESULTS}/runs/{{dataset}}/fit/{PROBE}/test{{part}}/predictions.parquet",
    log:
        f"{RESULTS}/logs/probe/{{dataset}}-test{{part}}.log",
    conda:
        "../envs/au_ttt.yaml"
    threads: 1
    resources:
        mem_mb=RES["cross_domain"].mem_mb,
        runtime=RES["cross_domain"].runtime,
    params:
        code=CODE,
        config=RESOLVED_CONFIG,
        out=f"{RESULTS}/runs/{{dataset}}/fit/{PROBE}/test{{part}}",
        parent=f"baselines/{{dataset}}/{PROBE}",
        settings=section_params("heatmaps"),
    shell:
        "OMP_NUM_THREADS={threads} au-ttt probe --config {params.config:q} --dataset {wildcards.dataset:q} "
        "--test-part {wildcards.part:q} --index {input.index:q} --crops {input.crops:q} "
        "--heatmaps {input.heatmaps:q} --out {params.out:q} --parent {params.parent:q} > {log:q} 2>&1"
