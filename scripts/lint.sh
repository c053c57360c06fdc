#!/usr/bin/env bash
# Style gate: clang-format (--check) and clang-tidy over every C++ file the project wrote.
# Usage: scripts/lint.sh [--fix-format] [files...]   (default: every tracked .h/.cc file)
set -euo pipefail
cd "$(dirname "$0")/.."

fix_format=0
if [[ "${1:-}" == "--fix-format" ]]; then
  fix_format=1
  shift
fi
if [[ $# -gt 0 ]]; then
  files=("$@")
else
  mapfile -t files < <(git ls-files '*.h' '*.cc' | grep -v '^third_party/')
fi

if [[ ${fix_format} -eq 1 ]]; then
  clang-format -i "${files[@]}"
else
  clang-format --dry-run -Werror "${files[@]}"
fi

# clang-tidy needs the generated proto headers.
bazel build //proto:apq_cc_grpc >/dev/null 2>&1
generated="$(bazel info bazel-genfiles 2>/dev/null)"
flags=(-std=c++17 -x c++ -I. -I"${generated}" -I"${generated}/proto" -I/usr/include/torch/csrc/api/include
       -isystem/usr/include/coin
       # third_party:httplib's defines (the features Debian's libcpp-httplib was built with).
       -DCPPHTTPLIB_OPENSSL_SUPPORT -DCPPHTTPLIB_ZLIB_SUPPORT -DCPPHTTPLIB_BROTLI_SUPPORT)
status=0
for file in "${files[@]}"; do
  [[ "${file}" == *.cc ]] || continue
  if ! clang-tidy --quiet "${file}" -- "${flags[@]}" 2>/dev/null | grep -E "warning:|error:" ; then
    :
  else
    status=1
  fi
done
exit ${status}
