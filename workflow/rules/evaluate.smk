# Cross-domain evaluation (Table II): the source model trained on two parts, scored on the target's AUs
# 1, 2, 4, 6, 12 — over the entire target (paper) or target part 1 only (FG-Net), per workflow.cross_domain_test.
# One per (init, variant, seed or probe fit, direction): AU-TTT's row and each same-protocol baseline's.


rule cross_domain:
    input:
        unpack(get_cross_inputs),
    output:
        metrics=f"{RESULTS}/cross/{{init}}/{{variant}}/{{member}}/{{source}}_to_{{target}}/metrics.json",
        predictions=f"{RESULTS}/cross/{{init}}/{{variant}}/{{member}}/{{source}}_to_{{target}}/predictions.parquet",
    log:
        f"{RESULTS}/logs/cross/{{init}}-{{variant}}-{{member}}-{{source}}_to_{{target}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/cross/{{init}}-{{variant}}-{{member}}-{{source}}_to_{{target}}.tsv"
    conda:
        "../envs/au_ttt.yaml"
    threads: RES["cross_domain"].threads
    resources:
        mem_mb=RES["cross_domain"].mem_mb,
        runtime=RES["cross_domain"].runtime,
        gpu=RES["cross_domain"].gpus,
    params:
        code=CODE,
        config=RESOLVED_CONFIG,
        run=get_run_dir,
        out=f"{RESULTS}/cross/{{init}}/{{variant}}/{{member}}/{{source}}_to_{{target}}",
        part=get_cross_part_arg,
        settings=section_params("heatmaps", "workflow.cross_domain_test"),
    shell:
        "OMP_NUM_THREADS={threads} au-ttt evaluate --config {params.config:q} --run {params.run:q} "
        "--dataset {wildcards.target:q} --index {input.index:q} --crops {input.crops:q} "
        "--heatmaps {input.heatmaps:q} {params.part:q} --out {params.out:q} > {log:q} 2>&1"
