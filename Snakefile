# Entry point kept at the repository root so `snakemake` works from here; the workflow lives in workflow/.
include: "workflow/Snakefile"
