"""The reporting layer: the paper's numbers, tables, figures (and the examples they show)
and the reproduction report."""
