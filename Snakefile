# Entry point kept at the repository root so `snakemake` works from here; the workflow lives in workflow/.
include: "workflow/Snakefile"


# Snakemake's `include:` restores the including file's default target afterwards (none here), which dropped
# rule all's `default_target: True`: a bare `snakemake` or `snakemake --report report.html` built an empty DAG.
workflow.default_target = "all"
