# Tables I–III, Figure 1 and REPORT.md from the run metrics (titled synthetic when the data are SynthAU).


rule tables:
    input:
        table1=expand("{run}/metrics.json", run=table1_runs()),
        table2=expand("{cross}/metrics.json", cross=cross_dirs()),
        table3=expand("{run}/metrics.json", run=table3_runs()),
    output:
        table1=f"{RESULTS}/tables/table1.md",
        table2=f"{RESULTS}/tables/table2.md",
        table3=f"{RESULTS}/tables/table3.md",
        figure=f"{RESULTS}/figures/figure1.png",
        report=f"{RESULTS}/REPORT.md",
    log:
        f"{RESULTS}/logs/tables.log",
    benchmark:
        f"{RESULTS}/benchmarks/tables/tables.tsv",
    conda:
        "../envs/au_ttt.yaml"
    params:
        code=CODE,
        config=RESOLVED_CONFIG,
        data=DATA_KIND,
        table1=table1_runs(),
        table2=cross_dirs(),
        table3=table3_runs(),
        out=get_report_root,
    threads: RES["tables"].threads
    resources:
        mem_mb=RES["tables"].mem_mb,
        runtime=RES["tables"].runtime,
    shell:
        "au-ttt tables --config {params.config:q} --data {params.data:q} --table1 {params.table1:q} "
        "--table2 {params.table2:q} --table3 {params.table3:q} --out {params.out:q} > {log:q} 2>&1"
