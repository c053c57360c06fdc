"""A fuzz target that is also a test.

In the normal build the target is a cc_test that runs LLVMFuzzerTestOneInput once on every
file of its committed corpus (tests/fuzz/corpus/<name>/, which also keeps every input a
fuzzing run found a defect with), so `bazel test //...` replays them all. Built with
--config=fuzz (scripts/fuzz.sh: clang-14, libFuzzer, AddressSanitizer, UBSan) the same
target links libFuzzer's main instead and fuzzes.
"""

def apq_fuzz_test(name, srcs, deps):
    native.filegroup(
        name = name + "_corpus",
        srcs = native.glob(["corpus/%s/*" % name]),
    )
    native.cc_test(
        name = name,
        size = "small",
        srcs = srcs,
        args = ["$(locations :%s_corpus)" % name],
        data = [":%s_corpus" % name],
        linkopts = select({
            ":fuzzing": ["-fsanitize=fuzzer"],
            "//conditions:default": [],
        }),
        tags = ["fuzz_target"],
        deps = deps + ["//third_party:absl"] + select({
            ":fuzzing": [],
            "//conditions:default": [":replay_main"],
        }),
    )
