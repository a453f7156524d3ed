# Tables I–III, Figure 1, the training curves, the table metrics (DVC) and REPORT.md from the runs' metrics and
# per-frame predictions (titled synthetic when the data are SynthAU). Every file `au-ttt tables` reads is an input.


rule tables:
    input:
        table1=table_inputs(table1_runs()),
        table2=table_inputs(cross_dirs()),
        table3=table_inputs(table3_runs()),
        baselines=table_inputs(baseline_runs()),
        baseline_cross=table_inputs(baseline_cross_dirs()),
        histories=[f"{r}/history.json" for r in table1_runs() + table3_runs()],
    output:
        table1=report(
            f"{RESULTS}/tables/table1.html",
            caption="../report/table1.rst",
            category="Tables",
            labels={"table": "I — within-domain"},
        ),
        table2=report(
            f"{RESULTS}/tables/table2.html",
            caption="../report/table2.rst",
            category="Tables",
            labels={"table": "II — cross-domain"},
        ),
        table3=report(
            f"{RESULTS}/tables/table3.html",
            caption="../report/table3.rst",
            category="Tables",
            labels={"table": "III — ablation"},
        ),
        comparisons=report(
            f"{RESULTS}/tables/comparisons.html",
            caption="../report/comparisons.rst",
            category="Tables",
            labels={"table": "paired comparisons"},
        ),
        markdown=[f"{RESULTS}/tables/{t}.md" for t in ("table1", "table2", "table3")],
        figure=report(
            f"{RESULTS}/figures/figure1.png",
            caption="../report/figure1.rst",
            category="Figures",
            labels={"figure": "Figure 1"},
        ),
        curves=report(
            f"{RESULTS}/figures/curves.png",
            caption="../report/curves.rst",
            category="Figures",
            labels={"figure": "training curves"},
        ),
        metrics=f"{RESULTS}/metrics.json",
        report=f"{RESULTS}/REPORT.md",
    log:
        f"{RESULTS}/logs/tables.log",
    benchmark:
        f"{RESULTS}/benchmarks/tables/tables.tsv"
    conda:
        "../envs/au_ttt.yaml"
    threads: RES["tables"].threads
    resources:
        mem_mb=RES["tables"].mem_mb,
        runtime=RES["tables"].runtime,
    params:
        code=CODE,
        config=RESOLVED_CONFIG,
        data=DATA_KIND,
        table1=table1_runs(),
        table2=cross_dirs(),
        table3=table3_runs(),
        parts=PARTS,
        variants=ABLATION_VARIANTS,
        baselines=(["--baselines", *baseline_runs()] if BASELINES else []),
        baseline_cross=(["--baselines-cross", *baseline_cross_dirs()] if BASELINES else []),
        out=get_report_root,
    shell:
        "au-ttt tables --config {params.config:q} --data {params.data:q} --table1 {params.table1:q} "
        "--table2 {params.table2:q} --table3 {params.table3:q} --parts {params.parts:q} --variants {params.variants:q} "
        "{params.baselines:q} {params.baseline_cross:q} "
        "--out {params.out:q} > {log:q} 2>&1"


# The benchmark figure of `au-ttt bench` (committed under the checkout's results/bench/, which is not the working
# directory under `snakemake -d`), copied so the report can show it.
rule benchmark_figure:
    input:
        str(REPO / "results/bench/scaling.png"),
    output:
        report(
            f"{RESULTS}/figures/benchmark.png",
            caption="../report/benchmark.rst",
            category="Figures",
            labels={"figure": "benchmark (au-ttt bench)"},
        ),
    log:
        f"{RESULTS}/logs/benchmark_figure.log",
    conda:
        "../envs/au_ttt.yaml"
    threads: 1
    resources:
        mem_mb=100,
        runtime=1,
    shell:
        "cp {input:q} {output:q} 2> {log:q}"
