# Raw data: SynthAU generation (embedded default) or the licensed roots → DISFA frames → frame index.
# Every value pasted into a shell line is quoted (`:q`): dataset roots may hold spaces or shell syntax.


if DATA_KIND == "synthau":

    localrules:
        synthau,

    rule synthau:
        output:
            manifest=f"{WF['synthau']['root']}/synthau.json",
        log:
            f"{RESULTS}/logs/synthau.log",
        conda:
            "../envs/au_ttt.yaml"
        threads: RES["synthau"].threads
        resources:
            mem_mb=RES["synthau"].mem_mb,
            runtime=RES["synthau"].runtime,
        params:
            code=CODE,
            root=get_synth_root,
            seed=WF["synthau"]["seed"],
            spp=WF["synthau"]["subjects_per_part"],
            tasks=WF["synthau"]["bp4d_tasks"],
            bp4d_frames=WF["synthau"]["bp4d_frames"],
            disfa_frames=WF["synthau"]["disfa_frames"],
        shell:
            "au-ttt synth --out {params.root:q} --seed {params.seed:q} --subjects-per-part {params.spp:q} "
            "--bp4d-tasks {params.tasks:q} --bp4d-frames {params.bp4d_frames:q} "
            "--disfa-frames {params.disfa_frames:q} --overwrite --no-progress > {log:q} 2>&1"


if DATA_KIND == "real":

    rule data_check:
        output:
            f"{RESULTS}/data/{{dataset}}/check.json",
        log:
            f"{RESULTS}/logs/data_check/{{dataset}}.log",
        benchmark:
            f"{RESULTS}/benchmarks/data_check/{{dataset}}.tsv"
        conda:
            "../envs/au_ttt.yaml"
        threads: RES["data_check"].threads
        resources:
            mem_mb=RES["data_check"].mem_mb,
            runtime=RES["data_check"].runtime,
        params:
            code=CODE,
            root=get_raw_root,
            expect=CHECK,
            # the full report lives beside the log: Snakemake deletes a failed job's outputs, and a failed
            # check is exactly when the user needs every mismatch, not the log's first lines
            report=f"{RESULTS}/logs/data_check/{{dataset}}.json",
        shell:
            "au-ttt data check --dataset {wildcards.dataset:q} --root {params.root:q} --expect {params.expect:q} "
            "--out {params.report:q} --no-progress > {log:q} 2>&1 && cp {params.report:q} {output:q}"


# One job per subject of each dataset whose index reads decoded video frames (DISFA's left-camera videos).
rule disfa_frames:
    input:
        raw_marker,
    output:
        directory(f"{RESULTS}/data/{{dataset}}/frames/{{subject}}"),
    log:
        f"{RESULTS}/logs/disfa_frames/{{dataset}}-{{subject}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/disfa_frames/{{dataset}}-{{subject}}.tsv"
    wildcard_constraints:
        dataset=DECODED_RE,
    conda:
        "../envs/au_ttt.yaml"
    threads: RES["disfa_frames"].threads
    resources:
        mem_mb=RES["disfa_frames"].mem_mb,
        runtime=RES["disfa_frames"].runtime,
    params:
        code=CODE,
        root=get_raw_root,
        frames=get_output_dir,
    shell:
        "au-ttt data frames --root {params.root:q} --out {params.frames:q} --subjects {wildcards.subject:q} "
        "--force --missing-ok --no-progress > {log:q} 2>&1"


rule frame_index:
    input:
        get_index_inputs,
    output:
        index=f"{RESULTS}/data/{{dataset}}/index.parquet",
        folds=f"{RESULTS}/data/{{dataset}}/folds.json",
    log:
        f"{RESULTS}/logs/frame_index/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/frame_index/{{dataset}}.tsv"
    conda:
        "../envs/au_ttt.yaml"
    threads: RES["frame_index"].threads
    resources:
        mem_mb=RES["frame_index"].mem_mb,
        runtime=RES["frame_index"].runtime,
    params:
        code=CODE,
        root=get_raw_root,
        frames=get_frames_arg,
    shell:
        "au-ttt data index --dataset {wildcards.dataset:q} --root {params.root:q} {params.frames:q} "
        "--out {output.index:q} --no-progress > {log:q} 2>&1"
