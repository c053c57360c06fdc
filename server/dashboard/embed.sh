#!/bin/sh
# Writes the C++ definitions of server/dashboard_assets.h: each asset file as a raw string.
# usage: embed.sh INDEX_HTML APP_JS APP_CSS > dashboard_assets.cc
set -eu
[ $# -eq 3 ] || { echo "usage: embed.sh INDEX_HTML APP_JS APP_CSS" >&2; exit 2; }

emit() {
  if grep -q ')apq_asset' "$2"; then
    echo "embed.sh: $2 holds the raw string's delimiter" >&2
    exit 1
  fi
  printf 'const std::string& %s() {\n  static const std::string* const kText = new std::string(R"apq_asset(' "$1"
  cat "$2"
  printf ')apq_asset");\n  return *kText;\n}\n\n'
}

printf '// Generated from server/dashboard/ by embed.sh; edit those files.\n'
printf '#include "server/dashboard_assets.h"\n\nnamespace apq::server {\n\n'
emit DashboardIndexHtml "$1"
emit DashboardScript "$2"
emit DashboardStyle "$3"
printf '}  // namespace apq::server\n'
