"""The evaluation library: embeddings stored once per split, the one-class task, the
neighbour files, runs fitted (or read back from the run cache) and scored, their records,
and the typed spec of each job. It knows nothing of Snakemake or of a config."""
