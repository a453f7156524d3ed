# Landmarks → aligned face crops → AU-centre heatmap cache, one job per subject shard (so wall time scales
# with --cores locally and --jobs on a cluster), then one cheap gather per dataset that merges the shards into
# the landmark file, crop store and heatmap cache the training jobs read (byte-identical to an unsharded run).


rule landmarks:
    input:
        index=f"{RESULTS}/data/{{dataset}}/index.parquet",
        raw=raw_marker,
    output:
        f"{RESULTS}/data/{{dataset}}/shards/{{shard}}/landmarks.npz",
    log:
        f"{RESULTS}/logs/landmarks/{{dataset}}-{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/landmarks/{{dataset}}-{{shard}}.tsv"
    conda:
        "../envs/au_ttt.yaml"
    threads: RES["landmarks"].threads
    resources:
        mem_mb=RES["landmarks"].mem_mb,
        runtime=RES["landmarks"].runtime,
    params:
        code=CODE,
        config=RESOLVED_CONFIG,
        image_root=get_image_root,
        raw_root=get_raw_root,
        subjects=get_shard_subjects,
        settings=section_params("landmarks"),
    shell:
        "au-ttt landmarks --config {params.config:q} --index {input.index:q} --root {params.image_root:q} "
        "--dataset-root {params.raw_root:q} --subjects {params.subjects:q} --out {output:q} --workers {threads} "
        "--no-progress > {log:q} 2>&1"


rule crops:
    input:
        index=f"{RESULTS}/data/{{dataset}}/index.parquet",
        landmarks=f"{RESULTS}/data/{{dataset}}/shards/{{shard}}/landmarks.npz",
    output:
        directory(f"{RESULTS}/data/{{dataset}}/shards/{{shard}}/crops"),
    log:
        f"{RESULTS}/logs/crops/{{dataset}}-{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/crops/{{dataset}}-{{shard}}.tsv"
    conda:
        "../envs/au_ttt.yaml"
    threads: RES["crops"].threads
    resources:
        mem_mb=RES["crops"].mem_mb,
        runtime=RES["crops"].runtime,
    params:
        code=CODE,
        config=RESOLVED_CONFIG,
        image_root=get_image_root,
        subjects=get_shard_subjects,
        settings=section_params("crops"),
    shell:
        "au-ttt crops --config {params.config:q} --index {input.index:q} --root {params.image_root:q} "
        "--landmarks {input.landmarks:q} --subjects {params.subjects:q} --out {output:q} --no-progress "
        "> {log:q} 2>&1"


rule heatmaps:
    input:
        index=f"{RESULTS}/data/{{dataset}}/index.parquet",
        crops=f"{RESULTS}/data/{{dataset}}/shards/{{shard}}/crops",
    output:
        directory(f"{RESULTS}/data/{{dataset}}/shards/{{shard}}/heatmaps"),
    log:
        f"{RESULTS}/logs/heatmaps/{{dataset}}-{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/heatmaps/{{dataset}}-{{shard}}.tsv"
    conda:
        "../envs/au_ttt.yaml"
    threads: RES["heatmaps"].threads
    resources:
        mem_mb=RES["heatmaps"].mem_mb,
        runtime=RES["heatmaps"].runtime,
    params:
        code=CODE,
        config=RESOLVED_CONFIG,
        subjects=get_shard_subjects,
        settings=section_params("heatmaps"),
    shell:
        "au-ttt heatmaps --config {params.config:q} --index {input.index:q} --crops {input.crops:q} "
        "--subjects {params.subjects:q} --out {output:q} --no-progress > {log:q} 2>&1"


rule gather:
    input:
        unpack(get_gather_inputs),
    output:
        landmarks=f"{RESULTS}/data/{{dataset}}/landmarks.npz",
        crops=directory(f"{RESULTS}/data/{{dataset}}/crops"),
        heatmaps=directory(f"{RESULTS}/data/{{dataset}}/heatmaps"),
    log:
        f"{RESULTS}/logs/gather/{{dataset}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/gather/{{dataset}}.tsv"
    conda:
        "../envs/au_ttt.yaml"
    threads: RES["gather"].threads
    resources:
        mem_mb=RES["gather"].mem_mb,
        runtime=RES["gather"].runtime,
    params:
        code=CODE,
        shards=get_shard_dirs,
    shell:
        "au-ttt gather --index {input.index:q} --shards {params.shards:q} --out-landmarks {output.landmarks:q} "
        "--out-crops {output.crops:q} --out-heatmaps {output.heatmaps:q} --no-progress > {log:q} 2>&1"
