"""Benchmarks: `sampan bench <what>` (`cli`) and one module per benchmark."""
