# The fuzz targets: tests/fuzz/NAME_fuzz.cpp each, with its seed corpus in tests/fuzz/corpus/NAME.
# Read by tests/fuzz/CMakeLists.txt (which builds them) and tests/CMakeLists.txt (which runs them).
set(shardprop_fuzz_targets csv_memory csv_stream layer_spec train_config checkpoint)
