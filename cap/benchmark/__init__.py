"""The benchmark layer: embedding store, one-class protocol, neighbour files, runs, AUROC
records and the planning of the workflow."""
