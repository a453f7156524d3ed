# Cross-domain evaluation (Table II): the source model trained on two parts, scored on the target's AUs
# 1, 2, 4, 6, 12 — over the entire target (paper) or target part 1 only (FG-Net), per workflow.cross_domain_test.


rule cross_domain:
    input:
        unpack(get_cross_inputs),
    output:
        f"{RESULTS}/cross/{{source}}_to_{{target}}/metrics.json",
    log:
        f"{RESULTS}/logs/cross/{{source}}_to_{{target}}.log",
    conda:
        "../envs/au_ttt.yaml"
    params:
        config=RESOLVED_CONFIG,
        out=f"{RESULTS}/cross/{{source}}_to_{{target}}",
        part=get_cross_part_arg,
        settings=section_params("heatmaps", "workflow.cross_domain_test"),
    threads: 1
    resources:
        gpu=GPU,
    shell:
        "OMP_NUM_THREADS={threads} au-ttt evaluate --config {params.config} --run $(dirname {input.run}) "
        "--dataset {wildcards.target} --index {input.index} --crops {input.crops} --heatmaps {input.heatmaps} "
        "{params.part} --out {params.out} > {log} 2>&1"
