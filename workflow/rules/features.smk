# Landmarks → aligned face crops → AU-centre heatmap cache, per dataset.


rule landmarks:
    input:
        index=f"{RESULTS}/data/{{dataset}}/index.parquet",
        raw=raw_marker,
    output:
        f"{RESULTS}/data/{{dataset}}/landmarks.npz",
    log:
        f"{RESULTS}/logs/landmarks/{{dataset}}.log",
    conda:
        "../envs/au_ttt.yaml"
    params:
        code=CODE,
        config=RESOLVED_CONFIG,
        image_root=get_image_root,
        raw_root=get_raw_root,
        settings=section_params("landmarks"),
    threads: RES["landmarks"].threads
    resources:
        mem_mb=RES["landmarks"].mem_mb,
        runtime=RES["landmarks"].runtime,
    shell:
        "au-ttt landmarks --config {params.config:q} --index {input.index:q} --root {params.image_root:q} "
        "--dataset-root {params.raw_root:q} --out {output:q} --workers {threads} --no-progress > {log:q} 2>&1"


rule crops:
    input:
        index=f"{RESULTS}/data/{{dataset}}/index.parquet",
        landmarks=f"{RESULTS}/data/{{dataset}}/landmarks.npz",
    output:
        store=directory(f"{RESULTS}/data/{{dataset}}/crops"),
    log:
        f"{RESULTS}/logs/crops/{{dataset}}.log",
    conda:
        "../envs/au_ttt.yaml"
    params:
        code=CODE,
        config=RESOLVED_CONFIG,
        image_root=get_image_root,
        settings=section_params("crops"),
    threads: RES["crops"].threads
    resources:
        mem_mb=RES["crops"].mem_mb,
        runtime=RES["crops"].runtime,
    shell:
        "au-ttt crops --config {params.config:q} --index {input.index:q} --root {params.image_root:q} "
        "--landmarks {input.landmarks:q} --out {output.store:q} --no-progress > {log:q} 2>&1"


rule heatmaps:
    input:
        index=f"{RESULTS}/data/{{dataset}}/index.parquet",
        crops=f"{RESULTS}/data/{{dataset}}/crops",
    output:
        cache=directory(f"{RESULTS}/data/{{dataset}}/heatmaps"),
    log:
        f"{RESULTS}/logs/heatmaps/{{dataset}}.log",
    conda:
        "../envs/au_ttt.yaml"
    params:
        code=CODE,
        config=RESOLVED_CONFIG,
        settings=section_params("heatmaps"),
    threads: RES["heatmaps"].threads
    resources:
        mem_mb=RES["heatmaps"].mem_mb,
        runtime=RES["heatmaps"].runtime,
    shell:
        "au-ttt heatmaps --config {params.config:q} --index {input.index:q} --crops {input.crops:q} "
        "--out {output.cache:q} --no-progress > {log:q} 2>&1"
