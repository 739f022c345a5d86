"""Tuning: layers and this machine -> measurements and choices: FMA peak, benchmark tables, the autotuner.

``peak`` measures the machine's FMA rate; ``benchmark`` times symconv's kernels against PyTorch and NumPy side by
side; ``autotune`` picks the fastest strategy per pass and hands it to the driver (``pipeline.compile_conv``).
This stage sits above the driver: the driver never calls it.
"""
