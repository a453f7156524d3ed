# Raw data: SynthAU generation (embedded default) or the licensed roots → DISFA frames → frame index.


rule synthau:
    input:
        code("data/synth/*.py"),
    output:
        manifest=f"{WF['synthau']['root']}/synthau.json",
    log:
        f"{RESULTS}/logs/synthau.log",
    conda:
        "../envs/au_ttt.yaml"
    params:
        root=get_synth_root,
        seed=WF["synthau"]["seed"],
        spp=WF["synthau"]["subjects_per_part"],
        tasks=WF["synthau"]["bp4d_tasks"],
        bp4d_frames=WF["synthau"]["bp4d_frames"],
        disfa_frames=WF["synthau"]["disfa_frames"],
    shell:
        "au-ttt synth --out {params.root} --seed {params.seed} --subjects-per-part {params.spp} "
        "--bp4d-tasks {params.tasks} --bp4d-frames {params.bp4d_frames} --disfa-frames {params.disfa_frames} "
        "--overwrite --no-progress > {log} 2>&1"


rule disfa_frames:
    input:
        raw_marker,
        code(*CODE_DATA),
    output:
        directory(f"{RESULTS}/data/disfa/frames"),
    log:
        f"{RESULTS}/logs/disfa_frames.log",
    conda:
        "../envs/au_ttt.yaml"
    params:
        root=raw_root("disfa"),
    shell:
        "au-ttt data frames --root {params.root} --out {output} --force > {log} 2>&1"


rule frame_index:
    input:
        get_index_inputs,
    output:
        index=f"{RESULTS}/data/{{dataset}}/index.parquet",
        folds=f"{RESULTS}/data/{{dataset}}/folds.json",
    log:
        f"{RESULTS}/logs/frame_index/{{dataset}}.log",
    conda:
        "../envs/au_ttt.yaml"
    params:
        root=get_raw_root,
        frames=get_frames_arg,
    shell:
        "au-ttt data index --dataset {wildcards.dataset} --root {params.root} {params.frames} "
        "--out {output.index} --no-progress > {log} 2>&1"
