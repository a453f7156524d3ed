# Landmarks → aligned face crops → AU-centre heatmap cache, per dataset.


rule landmarks:
    input:
        index=f"{RESULTS}/data/{{dataset}}/index.parquet",
        raw=raw_marker,
        code=code(*CODE_FEATURES),
    output:
        f"{RESULTS}/data/{{dataset}}/landmarks.npz",
    log:
        f"{RESULTS}/logs/landmarks/{{dataset}}.log",
    conda:
        "../envs/au_ttt.yaml"
    params:
        config=RESOLVED_CONFIG,
        image_root=get_image_root,
        raw_root=get_raw_root,
        settings=section_params("landmarks"),
    threads: 2
    shell:
        "au-ttt landmarks --config {params.config} --index {input.index} --root {params.image_root} "
        "--dataset-root {params.raw_root} --out {output} --workers {threads} --no-progress > {log} 2>&1"


rule crops:
    input:
        index=f"{RESULTS}/data/{{dataset}}/index.parquet",
        landmarks=f"{RESULTS}/data/{{dataset}}/landmarks.npz",
        code=code(*CODE_FEATURES),
    output:
        store=directory(f"{RESULTS}/data/{{dataset}}/crops"),
    log:
        f"{RESULTS}/logs/crops/{{dataset}}.log",
    conda:
        "../envs/au_ttt.yaml"
    params:
        config=RESOLVED_CONFIG,
        image_root=get_image_root,
        settings=section_params("crops"),
    shell:
        "au-ttt crops --config {params.config} --index {input.index} --root {params.image_root} "
        "--landmarks {input.landmarks} --out {output.store} --no-progress > {log} 2>&1"


rule heatmaps:
    input:
        index=f"{RESULTS}/data/{{dataset}}/index.parquet",
        crops=f"{RESULTS}/data/{{dataset}}/crops",
        code=code(*CODE_FEATURES),
    output:
        cache=directory(f"{RESULTS}/data/{{dataset}}/heatmaps"),
    log:
        f"{RESULTS}/logs/heatmaps/{{dataset}}.log",
    conda:
        "../envs/au_ttt.yaml"
    params:
        config=RESOLVED_CONFIG,
        settings=section_params("heatmaps"),
    shell:
        "au-ttt heatmaps --config {params.config} --index {input.index} --crops {input.crops} "
        "--out {output.cache} --no-progress > {log} 2>&1"
